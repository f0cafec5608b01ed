"""Build the model of an experiment from its config and its data set's TaskInfo."""

from __future__ import annotations

from typing import Any

from lindy.models.backbone import SequenceModel

# the head of each task: how the residual stream becomes the prediction
TASK_POOLING = {
    "classification": "mean",  # logits (B, classes)
    "regression": "mean",  # targets (B, d_output)
    "per_step_regression": "none",  # (B, L, d_output)
    "language_modeling": "none",  # next-token logits (B, L, vocab)
}


def build_model(model_cfg: dict[str, Any], info) -> SequenceModel:
    """``model_cfg``: SequenceModel keyword arguments (d_model, n_layers, layer, layer_kwargs, ...).

    d_input, d_output and tokens come from ``info`` (a ``lindy.data.TaskInfo``); pooling defaults to the
    task's head (TASK_POOLING) unless the config sets it.
    """
    cfg = dict(model_cfg)
    for key in ("d_input", "d_output", "tokens"):
        if key in cfg:
            raise ValueError(f"model config must not set {key!r}: it comes from the data set ({info})")
    cfg.setdefault("pooling", TASK_POOLING[info.task])
    return SequenceModel(info.d_input, info.d_output, tokens=info.tokens, **cfg)
