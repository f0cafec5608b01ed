"""Residual blocks around any contract layer, with a norm, dropout and an optional feed-forward part.

prenorm:  x <- x + Dropout(layer(Norm(x)))            [then x <- x + Dropout(FF(Norm(x)))]
postnorm: x <- Norm(x + Dropout(layer(x)))            [then x <- Norm(x + Dropout(FF(x)))]
With ``residual=False`` the "x +" is dropped (a plain stack, e.g. LEM's single cell as in its paper).

Norms act per position over the features, so the recurrent mode applies them step by step (batch norm
in eval mode uses its running statistics and is then per position too).
"""

from __future__ import annotations

from torch import Tensor, nn

from lindy.layers.base import SequenceLayer, build_layer, check_choice

NORMS = ("layer", "batch", "rms", "none")
FEEDFORWARDS = (None, "mlp", "glu")


class SequenceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of (..., d_model) inputs (statistics over every other dim)."""

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def make_norm(norm: str, d_model: int) -> nn.Module:
    check_choice("norm", norm, NORMS)
    if norm == "layer":
        return nn.LayerNorm(d_model)
    if norm == "batch":
        return SequenceBatchNorm(d_model)
    if norm == "rms":
        return nn.RMSNorm(d_model)
    return nn.Identity()


class FeedForward(nn.Module):
    """Position-wise MLP (Linear -> GELU -> Linear) or GLU (Linear -> GLU -> Linear), width ratio * d."""

    def __init__(self, d_model: int, kind: str, ratio: int = 2, dropout: float = 0.0):
        super().__init__()
        hidden = ratio * d_model
        if kind == "mlp":
            self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout))
        else:
            self.net = nn.Sequential(nn.Linear(d_model, 2 * hidden), nn.GLU(dim=-1), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.net(x))


class ResidualBlock(nn.Module):
    """A contract layer (and an optional feed-forward part) with residual connections and norms.

    x: (batch, length, d_model) -> (batch, length, d_model); ``step`` and ``forward_with_state`` pass
    the layer's state through.
    """

    def __init__(
        self,
        d_model: int,
        layer: str | type,
        layer_kwargs: dict | None = None,
        *,
        prenorm: bool = True,
        norm: str = "layer",
        dropout: float = 0.0,
        ff: str | None = None,
        ff_ratio: int = 2,
        residual: bool = True,
    ):
        super().__init__()
        self.residual = bool(residual)
        check_choice("mlp", ff, FEEDFORWARDS)
        self.layer: SequenceLayer = build_layer(layer, d_model, **(layer_kwargs or {}))
        if self.layer.d_input != d_model or self.layer.d_model != d_model:
            raise ValueError(
                f"a residual block needs a layer with d_input = d_model = {d_model}, "
                f"got d_input={self.layer.d_input}, d_model={self.layer.d_model}"
            )
        self.prenorm = prenorm
        self.norm = make_norm(norm, d_model)
        self.dropout = nn.Dropout(dropout)
        self.ff = FeedForward(d_model, ff, ff_ratio, dropout) if ff else None
        self.ff_norm = make_norm(norm, d_model) if ff else None

    def _sub(self, x: Tensor, fn, norm: nn.Module) -> Tensor:
        skip = x if self.residual else 0
        if self.prenorm:
            return skip + self.dropout(fn(norm(x)))
        return norm(skip + self.dropout(fn(x)))

    def _feedforward(self, x: Tensor) -> Tensor:
        return x if self.ff is None else self._sub(x, self.ff, self.ff_norm)

    def forward(self, x: Tensor) -> Tensor:
        return self._feedforward(self._sub(x, self.layer, self.norm))

    def _with_state(self, x: Tensor, state, layer_fn):
        new = {}

        def run(h):
            y, new["state"] = layer_fn(h, state)
            return y

        return self._feedforward(self._sub(x, run, self.norm)), new["state"]

    def forward_with_state(self, x: Tensor, state):
        """x: (batch, length, d_model) from ``state`` -> (y, new state)."""
        return self._with_state(x, state, self.layer.forward_with_state)

    def step(self, x_t: Tensor, state):
        """x_t: (batch, d_model) -> (y_t, new state); norms and the feed-forward part are per position."""
        return self._with_state(x_t, state, self.layer.step)

    def initial_state(self, batch_size: int, device=None, dtype=None):
        return self.layer.initial_state(batch_size, device=device, dtype=dtype)

    @property
    def recurrent(self) -> bool:
        return getattr(self.layer, "recurrent", True)
