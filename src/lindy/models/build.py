"""Build the model of an experiment from its config and its data set's TaskInfo."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from lindy.models.backbone import SequenceModel
from lindy.models.heads import TASK_POOLING, TASK_POOLINGS

__all__ = ["build_model", "TASK_POOLING"]

_FROM_DATA = ("d_input", "d_output", "tokens")


def build_model(model_cfg: Mapping[str, Any], info) -> SequenceModel:
    """Build a SequenceModel for the data set described by ``info`` (a ``lindy.data.TaskInfo``).

    ``model_cfg`` holds SequenceModel keyword arguments (d_model, n_layers, layer, layer_kwargs, prenorm,
    norm, dropout, mlp, mlp_ratio, pooling, tie_embeddings, residual, encoder). d_input, d_output and
    tokens come from ``info``. The head is the pooling of ``info.task`` (``TASK_POOLING``: mean for
    classification and regression, none for per-step regression and language modelling) unless the config
    sets pooling (``None`` means the task's default) to another one the task allows (``TASK_POOLINGS``).
    """
    cfg = dict(model_cfg)
    for key in _FROM_DATA:
        if key in cfg:
            raise ValueError(f"model config must not set {key!r}: it comes from the data set ({info})")
    allowed = [
        p for p in inspect.signature(SequenceModel.__init__).parameters if p not in ("self", *_FROM_DATA)
    ]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"unknown model config keys {unknown}; expected some of {allowed}")
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
