"""Heads: how the residual stream h (B, L, d_model) becomes the prediction.

lindy has no separate head classes: a head is a **pooling** followed by the model's linear ``decoder``
(d_model -> d_output). The task picks the pooling (``TASK_POOLING``); a config may override it with another
pooling the task allows (``TASK_POOLINGS``):

=========================  ===========  ===========================================================
task                       pooling      output
=========================  ===========  ===========================================================
classification             mean | last  logits (B, classes)
regression                 mean | last  targets (B, d_output)
per_step_regression        none         (B, L, d_output)
language_modeling          none         next-token logits (B, L, vocab); tokens in, optionally tied
=========================  ===========  ===========================================================

Poolings, with h_t the (final-normed) residual stream at step t = 1..L:

- ``mean``: p = (1/L) sum_t h_t. Streaming keeps (S_t = sum_{s<=t} h_s, n_t = t) and returns S_t / n_t, so
  the prediction after the last step equals the pooled forward (the decoder is affine, so decoding the
  running mean is the mean of the decoded states).
- ``last``: p = h_L. Streaming needs no extra state: the prediction after step t is decoder(h_t).
- ``none``: no pooling, one output per step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["POOLINGS", "TASK_POOLING", "TASK_POOLINGS", "SequencePooling"]

POOLINGS = ("mean", "last", "none")

#: the default head of each task (``lindy.data.TaskInfo.task``)
TASK_POOLING = {
    "classification": "mean",
    "regression": "mean",
    "per_step_regression": "none",
    "language_modeling": "none",
}

#: poolings whose output shape matches each task's targets
TASK_POOLINGS = {
    "classification": ("mean", "last"),
    "regression": ("mean", "last"),
    "per_step_regression": ("none",),
    "language_modeling": ("none",),
}


class SequencePooling(nn.Module):
    """Pool (B, L, H) -> (B, H) ("mean", "last") or pass it through ("none"); no parameters.

    Recurrent mode, mirroring the layer contract:

    - ``initial_state(B)``: ``(sum (B, H), count (B, 1) int64)`` for mean; ``None`` otherwise;
    - ``step(h_t (B, H), state) -> (pooled so far (B, H), state)`` (for "none": h_t itself);
    - ``forward_with_state(h (B, Lc, H), state) -> (pooled so far (B, H), state)`` (for "none": h).
    """

    def __init__(self, pooling: str):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling

    def extra_repr(self) -> str:
        return repr(self.pooling)

    def forward(self, h: Tensor) -> Tensor:
        if self.pooling == "mean":
            return h.mean(1)
        if self.pooling == "last":
            return h[:, -1]
        return h

    def initial_state(self, batch_size: int, d_model: int, device=None, dtype=None):
        if self.pooling != "mean":
            return None
        total = torch.zeros(batch_size, d_model, device=device, dtype=dtype)
        count = torch.zeros(batch_size, 1, device=device, dtype=torch.long)
        return total, count

    def _update(self, h_sum: Tensor, n: int, last: Tensor, state):
        if self.pooling == "last":
            return last, state
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError(
                "the mean-pooling state must be the (running sum, count) pair from initial_state, "
                f"got {type(state).__name__}"
            )
        total, count = state
        total, count = total + h_sum, count + n
        return total / count, (total, count)

    def step(self, h_t: Tensor, state):
        if self.pooling == "none":
            return h_t, state
        return self._update(h_t, 1, h_t, state)

    def forward_with_state(self, h: Tensor, state):
        if self.pooling == "none":
            return h, state
        return self._update(h.sum(1), h.shape[1], h[:, -1], state)
