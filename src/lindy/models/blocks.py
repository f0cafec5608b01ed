"""Residual blocks around any contract layer, with a norm, dropout and an optional feed-forward part.

With f the sequence layer, g the feed-forward part (when ``mlp`` is set), N a norm and D dropout:

    prenorm:   x <- x + D(f(N1(x)));   then x <- x + D(g(N2(x)))
    postnorm:  x <- N1(x + D(f(x)));   then x <- N2(x + D(g(x)))

With ``residual=False`` the "x +" is dropped (a plain stack, e.g. LEM's single cell as in its paper).
With ``postnorm_compat=True`` (post-norm only) the norms are skipped, x <- x + D(f(x)): the SpikingSSM
reference computes its post-norm and discards the result, and its reported numbers ran that way.

Norms and g act per position over the features, so the recurrent mode applies them step by step. Batch
norm is per position only in eval mode (running statistics); in training mode a step normalises over the
batch alone, so stream in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from lindy.layers.base import LAYERS, SequenceLayer, build_layer, check_choice, check_finite_number

__all__ = ["NORMS", "FEEDFORWARDS", "SequenceBatchNorm", "make_norm", "FeedForward", "ResidualBlock"]

NORMS = ("layer", "batch", "rms", "none")
FEEDFORWARDS = (None, "mlp", "glu")


class SequenceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of (..., d_model) inputs (statistics over every other dim).

    (B, L, H) is flattened to (B*L, H), which is BatchNorm1d on the transposed (B, H, L) input.
    """

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def make_norm(norm: str, d_model: int) -> nn.Module:
    """``"layer"``: LayerNorm, ``"batch"``: SequenceBatchNorm, ``"rms"``: RMSNorm, ``"none"``: Identity."""
    check_choice("norm", norm, NORMS)
    if norm == "layer":
        return nn.LayerNorm(d_model)
    if norm == "batch":
        return SequenceBatchNorm(d_model)
    if norm == "rms":
        return nn.RMSNorm(d_model)
    return nn.Identity()


class FeedForward(nn.Module):
    """Position-wise feed-forward part, (..., H) -> (..., H), hidden width m = round(ratio * H).

    ``"mlp"``: W2 D(GELU(W1 x));  ``"glu"``: W2 D((W1a x) * sigmoid(W1b x)).
    """

    def __init__(self, d_model: int, kind: str = "mlp", ratio: float = 2, dropout: float = 0.0):
        super().__init__()
        check_choice("mlp", kind, [k for k in FEEDFORWARDS if k])
        check_finite_number("mlp_ratio", ratio, positive=True)
        hidden = max(1, round(ratio * d_model))
        if kind == "mlp":
            self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout))
        else:
            self.net = nn.Sequential(nn.Linear(d_model, 2 * hidden), nn.GLU(dim=-1), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.net(x))


def _build_sequence_layer(layer, d_model: int, layer_kwargs) -> SequenceLayer:
    if not isinstance(layer, str) and not callable(layer):
        raise TypeError(
            f"layer must be a registered layer name (one of {sorted(LAYERS)}) or a SequenceLayer class, "
            f"got {layer!r}"
        )
    if isinstance(layer, type) and not issubclass(layer, SequenceLayer):
        raise TypeError(f"layer must be a lindy SequenceLayer class or a registered name, got {layer!r}")
    if layer_kwargs is None:
        layer_kwargs = {}
    if not isinstance(layer_kwargs, Mapping):
        raise TypeError(f"layer_kwargs must be a dict of the layer's keyword arguments, got {layer_kwargs!r}")
    if "d_model" in layer_kwargs:
        raise ValueError("layer_kwargs must not set 'd_model': the block passes the model's d_model")
    module = build_layer(layer, d_model, **dict(layer_kwargs))
    if not isinstance(module, SequenceLayer):
        raise TypeError(f"layer must build a lindy SequenceLayer, {layer!r} built {type(module).__name__}")
    return module


class ResidualBlock(nn.Module):
    """A contract layer (and an optional feed-forward part) with residual connections and norms.

    Shapes: ``forward``: x (B, L, H) -> (B, L, H); ``step``: x_t (B, H) -> (B, H); ``forward_with_state``:
    (B, Lc, H) -> (B, Lc, H), the input's last dim being ``d_input`` where that is given. The state is the
    layer's state (the norms and g have none).

    Args:
        d_model: H, the width of the residual stream (the layer is built with d_model = d_input = H).
        d_input: the width of the block's input when it is not H (the first block of a model without an
            encoder): the layer is then built with ``d_input=`` this, and the block cannot be residual.
        layer: registered layer name (``"s4d"``) or a SequenceLayer class; built as
            ``build_layer(layer, d_model, **layer_kwargs)``.
        prenorm, norm, dropout, residual: see the module docstring.
        mlp: None | "mlp" | "glu", with hidden width ``mlp_ratio * d_model``.
        postnorm_compat: with prenorm=False, leave the block's output un-normalised as the SpikingSSM
            reference does (its norms are still built, so state_dicts keep their keys); False, the default,
            is a working post-norm.
    """

    def __init__(
        self,
        d_model: int,
        layer: str | type,
        layer_kwargs: Mapping | None = None,
        *,
        prenorm: bool = True,
        norm: str = "layer",
        dropout: float = 0.0,
        mlp: str | None = None,
        mlp_ratio: float = 2,
        residual: bool = True,
        d_input: int | None = None,
        postnorm_compat: bool = False,
    ):
        super().__init__()
        check_choice("norm", norm, NORMS)
        if postnorm_compat and prenorm:
            raise ValueError(
                "postnorm_compat=True reproduces the SpikingSSM reference's discarded post-norm: it needs "
                "prenorm=False"
            )
        check_choice("mlp", mlp, FEEDFORWARDS)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        self.prenorm = bool(prenorm)
        self.residual = bool(residual)
        self.postnorm_compat = bool(postnorm_compat)
        d_in = d_model if d_input is None else d_input
        if d_in != d_model:
            if self.residual:
                raise ValueError(
                    f"a block whose input width d_input={d_in} differs from d_model={d_model} cannot add its "
                    "input to its output: set residual=False (or keep the model's encoder)"
                )
            if layer_kwargs and "d_input" in layer_kwargs:
                raise ValueError("layer_kwargs must not set 'd_input': the block passes its input width")
            layer_kwargs = {**(layer_kwargs or {}), "d_input": d_in}
        try:
            self.layer: SequenceLayer = _build_sequence_layer(layer, d_model, layer_kwargs)
        except TypeError as err:
            if d_in == d_model or "d_input" not in str(err):
                raise
            raise ValueError(
                f"layer {layer!r} takes no d_input argument, so it cannot read the d_input={d_in} raw "
                "features of a model without an encoder: keep the encoder (encoder=True)"
            ) from err
        if self.layer.d_input != d_in or self.layer.d_model != d_model:
            raise ValueError(
                f"a block needs a layer with d_input = {d_in}, d_model = {d_model}, "
                f"got d_input={self.layer.d_input}, d_model={self.layer.d_model}"
            )
        self.norm = make_norm(norm, d_in if self.prenorm else d_model)
        self.dropout = nn.Dropout(dropout)
        self.ff = FeedForward(d_model, mlp, mlp_ratio, dropout) if mlp else None
        self.ff_norm = make_norm(norm, d_model) if mlp else None

    @property
    def recurrent(self) -> bool:
        return bool(getattr(self.layer, "recurrent", True))

    def _residual(self, x: Tensor, y: Tensor, norm: nn.Module) -> Tensor:
        h = self.dropout(y) if not self.residual else x + self.dropout(y)
        return h if self.prenorm or self.postnorm_compat else norm(h)

    def _feedforward(self, x: Tensor) -> Tensor:
        if self.ff is None:
            return x
        y = self.ff(self.ff_norm(x) if self.prenorm else x)
        return self._residual(x, y, self.ff_norm)

    def forward(self, x: Tensor) -> Tensor:
        y = self.layer(self.norm(x) if self.prenorm else x)
        return self._feedforward(self._residual(x, y, self.norm))

    def initial_state(self, batch_size: int, device=None, dtype=None):
        return self.layer.initial_state(batch_size, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state):
        """x_t: (B, H) -> (y_t (B, H), new state)."""
        y, state = self.layer.step(self.norm(x_t) if self.prenorm else x_t, state)
        return self._feedforward(self._residual(x_t, y, self.norm)), state

    def forward_with_state(self, x: Tensor, state):
        """x: (B, Lc, H) from ``state`` -> (y (B, Lc, H), new state)."""
        y, state = self.layer.forward_with_state(self.norm(x) if self.prenorm else x, state)
        return self._feedforward(self._residual(x, y, self.norm)), state
