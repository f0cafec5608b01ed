"""Build the model of an experiment from its config and its data set's TaskInfo."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from lindy.models.backbone import SequenceModel
from lindy.models.heads import TASK_POOLING, TASK_POOLINGS
from lindy.models.sdn import SDNModel

__all__ = ["build_model", "MODEL_KINDS", "TASK_POOLING"]

_FROM_DATA = ("d_input", "d_output", "tokens")

#: ``model.kind``: the class each kind builds (its keyword arguments are the model config's keys)
MODEL_KINDS: dict[str, type[nn.Module]] = {"sequence": SequenceModel, "sdn": SDNModel}


def config_keys(kind: str) -> list[str]:
    """The model config keys of ``kind`` (its constructor's keyword arguments less the data set's)."""
    params = inspect.signature(MODEL_KINDS[kind].__init__).parameters
    return [p for p in params if p not in ("self", *_FROM_DATA)]


def _check_keys(cfg: dict, allowed: list[str]) -> None:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown model config keys {unknown}; expected some of {allowed}")


def build_model(model_cfg: Mapping[str, Any], info) -> nn.Module:
    """Build the model of ``model_cfg`` for the data set described by ``info`` (a ``lindy.data.TaskInfo``).

    ``kind`` (default "sequence") picks the model. "sequence": a SequenceModel; ``model_cfg`` holds its
    keyword arguments (d_model, n_layers, layer, layer_kwargs, prenorm, norm, dropout, mlp, mlp_ratio,
    pooling, tie_embeddings, residual, encoder, postnorm_compat, decoder_init, input_dropout). d_input,
    d_output and tokens come from ``info``. The head is the pooling of ``info.task`` (``TASK_POOLING``: mean
    for classification and regression, none for per-step regression and language modelling) unless the config
    sets pooling (``None`` means the task's default) to another one the task allows (``TASK_POOLINGS``).
    "sdn": the bare SDN (``SDNModel``: d_model, kernel_size), for per-step regression of feature inputs;
    it has no sequence layer (``lindy.train.config.model_config`` passes it no layer group).
    """
    cfg = dict(model_cfg)
    kind = cfg.pop("kind", "sequence")
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind must be one of {sorted(MODEL_KINDS)}, got {kind!r}")
    for key in _FROM_DATA:
        if key in cfg:
            raise ValueError(f"model config must not set {key!r}: it comes from the data set ({info})")
    if kind == "sdn":
        return _build_sdn(cfg, info)
    _check_keys(cfg, config_keys("sequence"))
    if cfg.get("pooling") is None:
        cfg["pooling"] = TASK_POOLING[info.task]
    if cfg["pooling"] not in TASK_POOLINGS[info.task]:
        raise ValueError(
            f"pooling must be one of {list(TASK_POOLINGS[info.task])} for task {info.task!r} "
            f"(its targets' shape), got {cfg['pooling']!r}"
        )
    if info.task == "language_modeling" and not info.tokens:
        raise ValueError("task 'language_modeling' needs token inputs (info.tokens=True)")
    return SequenceModel(info.d_input, info.d_output, tokens=info.tokens, **cfg)


def _build_sdn(cfg: dict, info) -> SDNModel:
    for key in ("layer", "layer_kwargs"):
        if key in cfg:
            raise ValueError(f"model kind 'sdn' has no sequence layer: its config must not set {key!r}")
    _check_keys(cfg, config_keys("sdn"))
    if info.task != "per_step_regression" or info.tokens:
        raise ValueError(
            "model kind 'sdn' predicts a value per step from feature inputs: it needs task "
            f"'per_step_regression' without tokens, got task {info.task!r}, tokens={info.tokens}"
        )
    return SDNModel(info.d_input, info.d_output, **cfg)
