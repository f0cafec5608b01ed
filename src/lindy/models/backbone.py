"""The sequence model every lindy experiment trains: encoder -> residual blocks -> pooling -> decoder.

    x <- Dropout(x)                     (input_dropout > 0 only, feature inputs, training only)
    x (B, L, d_input) float  --Linear-->  h (B, L, H)        (or tokens x (B, L) long --Embedding-->)
    h <- block_i(h), i = 1..n_layers    (ResidualBlock around any contract layer, see blocks.py)
    h <- Norm(h)                        (prenorm only: pre-norm blocks leave the stream un-normalised)
    p = pool(h)                         "mean" | "last" -> (B, H);  "none" -> (B, L, H)   (see heads.py)
    y = decoder(p)                      (B, d_output) or (B, L, d_output)

The recurrent mode (``initial_state``, ``step``, ``forward_with_state``) runs the same model as an RNN.
With pooling "none" a step returns that step's output, and chunked outputs concatenate to ``forward``.
With "mean" or "last" a step (or a chunk) returns the prediction from everything seen so far: after the
last input it equals ``forward`` on the whole sequence.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from lindy._checks import check_fraction
from lindy.layers.base import (
    check_finite_input,
    check_finite_number,
    check_positive_int,
    inputs_checked,
    refuse_non_finite_state_dict,
)
from lindy.models.blocks import FEEDFORWARDS, NORMS, ResidualBlock, make_norm
from lindy.models.heads import POOLINGS, SequencePooling

__all__ = ["DECODER_INITS", "SequenceModel"]

#: decoder weight initialisations: nn.Linear's own (uniform, std 1/sqrt(3 H)), or He-normal
#: (std sqrt(2 / H)), which LEM's reference networks draw for their readout (bias left as nn.Linear's)
DECODER_INITS = ("default", "kaiming_normal")


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


class SequenceModel(nn.Module):
    """Encoder, ``n_layers`` residual blocks of a contract layer, final norm, pooling and a linear decoder.

    Maths (H = d_model; N = norm; D = dropout; f_i the i-th layer; g_i its optional feed-forward part):

        h^0 = W_e D_in(x) + b_e   (features)   or   h^0_t = E[x_t]   (tokens)   or   h^0 = D_in(x)
        (encoder=False), with D_in the input dropout (the identity in eval mode or when input_dropout=0)
        prenorm:  u = h + D(f_i(N(h))),  h^i = u + D(g_i(N'(u)));   then h = N_final(h^n)
        postnorm: u = N(h + D(f_i(h))),  h^i = N'(u + D(g_i(u)));  (no final norm)
        postnorm_compat: u = h + D(f_i(h)),  h^i = u + D(g_i(u))    (the SpikingSSM reference's blocks)
        y = W_d pool(h) + b_d,  pool in {mean over t, h_L, identity}

    Shapes:
        forward: x (B, L, d_input) float, or (B, L) integer tokens when ``tokens`` ->
        (B, d_output) with pooling "mean" / "last", (B, L, d_output) with pooling "none".
        step: x_t (B, d_input) or (B,) tokens -> (B, d_output) (this step's output for "none", the
        prediction from all steps so far otherwise), new state.
        forward_with_state: a chunk (B, Lc, d_input) or (B, Lc) -> (B, Lc, d_output) for "none", the
        prediction so far (B, d_output) otherwise, new state.

    State (from ``initial_state``): a tuple with one entry per block (that layer's state), followed, for
    mean pooling only, by ``(running sum (B, H), count (B, 1) int64)``.

    Args:
        d_input: input features per step, or the vocabulary size when ``tokens``.
        d_output: classes, regression targets, or vocabulary size.
        d_model: H, the width of the residual stream.
        n_layers: number of residual blocks.
        layer: registered layer name (``"s4d"``) or a SequenceLayer class, built per block as
            ``build_layer(layer, d_model, **layer_kwargs)``.
        layer_kwargs: keyword arguments of the layer (not d_model).
        tokens: inputs are integer tokens (B, L) embedded by ``nn.Embedding(d_input, d_model)``.
        prenorm: pre-norm (x + f(N x)) or post-norm (N(x + f(x))) residual blocks.
        norm: "layer" | "batch" | "rms" | "none".
        dropout: residual dropout probability in [0, 1].
        mlp: None | "mlp" | "glu": a position-wise feed-forward part in each block, width mlp_ratio * H.
        mlp_ratio: > 0.
        pooling: "mean" | "last" | "none" (per-step outputs); the head is this pooling + the decoder.
        tie_embeddings: share the embedding matrix with the decoder (tokens in, same vocabulary out).
        residual: skip connections around each block (False: a plain stack of layers).
        encoder: the Linear encoder d_input -> H before the blocks. False feeds the raw features to the first
            block's layer (built with ``d_input=``; needs residual=False, features not tokens, and a layer
            taking d_input such as LEM): the single-cell models of the LEM paper, whose cell projects its
            input itself.
        postnorm_compat: with prenorm=False, skip the blocks' post-norms as the SpikingSSM reference does
            (it computes them and discards the result; its reported numbers ran so). The norms are still
            built, so the state_dict keys do not change. Default False: a working post-norm.
        decoder_init: "default" (nn.Linear's uniform draw) or "kaiming_normal" (W_d ~ N(0, 2 / H), the readout
            of LEM's reference networks; its bias stays nn.Linear's). Ignored for the weight when
            ``tie_embeddings`` shares it with the embedding.
        input_dropout: probability in [0, 1) of zeroing each input feature (``nn.Dropout``, training only)
            before the encoder, or before the first layer with encoder=False, in every mode (forward, step,
            forward_with_state): LEM's Google12 network drops 3 % of its input features. Feature inputs
            only (token ids cannot be dropped); 0 (default) adds nothing.

    Parameters keep whatever optimiser hints (``_optim``) their layers set; nothing else is marked.
    """

    def __init__(
        self,
        d_input: int,
        d_output: int,
        *,
        d_model: int = 128,
        n_layers: int = 4,
        layer: str | type = "s4d",
        layer_kwargs: Mapping | None = None,
        tokens: bool = False,
        prenorm: bool = True,
        norm: str = "layer",
        dropout: float = 0.0,
        mlp: str | None = None,
        mlp_ratio: float = 2,
        pooling: str = "mean",
        tie_embeddings: bool = False,
        residual: bool = True,
        encoder: bool = True,
        postnorm_compat: bool = False,
        decoder_init: str = "default",
        input_dropout: float = 0.0,
    ):
        super().__init__()
        self.d_input = check_positive_int("d_input", d_input)
        self.d_output = check_positive_int("d_output", d_output)
        self.d_model = check_positive_int("d_model", d_model)
        self.n_layers = check_positive_int("n_layers", n_layers)
        self.tokens = _check_bool("tokens", tokens)
        _check_bool("prenorm", prenorm)
        _check_bool("tie_embeddings", tie_embeddings)
        _check_bool("residual", residual)
        _check_bool("encoder", encoder)
        _check_bool("postnorm_compat", postnorm_compat)  # needs prenorm=False: the blocks check it
        if not encoder and tokens:
            raise ValueError("encoder=False needs feature inputs: token ids (tokens=True) need the embedding")
        for name, value, choices in [
            ("norm", norm, NORMS),
            ("mlp", mlp, FEEDFORWARDS),
            ("pooling", pooling, POOLINGS),
            ("decoder_init", decoder_init, DECODER_INITS),
        ]:
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        check_finite_number("mlp_ratio", mlp_ratio, positive=True)
        check_fraction("input_dropout", input_dropout, zero=True)
        if tokens and input_dropout > 0:
            raise ValueError(
                "input_dropout must be 0 for token inputs (tokens=True: ids cannot be dropped), "
                f"got {input_dropout}"
            )
        if tie_embeddings and (not tokens or d_input != d_output):
            raise ValueError(
                "tie_embeddings needs tokens=True and d_input == d_output (the same vocabulary in and out), "
                f"got tokens={tokens}, d_input={d_input}, d_output={d_output}"
            )
        self.pooling = pooling

        # Identity at 0: no extra op, the same numbers as a model built without the option
        self.input_dropout = nn.Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        if not encoder:
            self.encoder = nn.Identity()
        else:
            self.encoder = nn.Embedding(d_input, d_model) if tokens else nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                d_model,
                layer,
                layer_kwargs,
                prenorm=prenorm,
                norm=norm,
                dropout=dropout,
                mlp=mlp,
                mlp_ratio=mlp_ratio,
                residual=residual,
                d_input=d_input if (i == 0 and not encoder) else None,
                postnorm_compat=postnorm_compat,
            )
            for i in range(n_layers)
        )
        self.final_norm = make_norm(norm, d_model) if prenorm else nn.Identity()
        self.pool = SequencePooling(pooling)
        self.decoder = nn.Linear(d_model, d_output)
        if decoder_init == "kaiming_normal":
            nn.init.kaiming_normal_(self.decoder.weight)  # fan_in = H, gain sqrt(2)
        if tie_embeddings:
            self.decoder.weight = self.encoder.weight
        self.register_load_state_dict_pre_hook(refuse_non_finite_state_dict)

    @property
    def recurrent(self) -> bool:
        """Whether every block has a recurrent form (a bidirectional layer has none)."""
        return all(block.recurrent for block in self.blocks)

    # ------------------------------------------------------------------------------------------------
    # input checks
    # ------------------------------------------------------------------------------------------------
    def _check_input(self, x, *, step: bool) -> None:
        name = "x_t" if step else "x"
        if self.tokens:
            want = "(batch,)" if step else "(batch, length)"
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of integer tokens {want}, got {type(x)}")
            if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
                raise TypeError(f"{name} must hold integer token ids (tokens=True), got dtype {x.dtype}")
            if x.dim() != (1 if step else 2):
                raise ValueError(
                    f"{name} must have {1 if step else 2} dims {want} of token ids (tokens=True), "
                    f"got shape {tuple(x.shape)}"
                )
            if x.numel() and not torch.compiler.is_compiling():
                lo, hi = int(x.min()), int(x.max())
                if lo < 0 or hi >= self.d_input:
                    raise ValueError(
                        f"{name} token ids must be in [0, d_input={self.d_input}), got values in [{lo}, {hi}]"
                    )
        else:
            rank, want = (
                (2, f"(batch, d_input={self.d_input})")
                if step
                else (3, f"(batch, length, d_input={self.d_input})")
            )
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of shape {want}, got {type(x)}")
            if x.dim() != rank:
                raise ValueError(f"{name} must have {rank} dims {want}, got shape {tuple(x.shape)}")
            if x.shape[-1] != self.d_input:
                raise ValueError(
                    f"{name} last dim must be d_input={self.d_input}, got shape {tuple(x.shape)}"
                )
            if not x.is_floating_point():
                raise TypeError(
                    f"{name} must be a floating tensor of features (tokens=False), got dtype {x.dtype}; "
                    "integer token ids need tokens=True"
                )
            dtype = self.decoder.weight.dtype
            autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cpu", "cuda") else False
            if x.dtype != dtype and not autocast:
                raise TypeError(
                    f"{name} has dtype {x.dtype} but the model's parameters are {dtype}; convert one of them "
                    f"(e.g. model.to({x.dtype}) or x.to({dtype})), or run under torch.autocast"
                )
        if not step and x.shape[1] == 0:
            raise ValueError(f"{name} must have length >= 1, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} must have batch >= 1, got shape {tuple(x.shape)}")
        if not self.tokens:
            check_finite_input(x, name, ("batch", "feature") if step else ("batch", "step", "feature"))

    def _require_recurrent(self) -> None:
        if not self.recurrent:
            raise NotImplementedError(
                "this model has a layer without a recurrent form (bidirectional); it cannot stream: "
                "build its layers with bidirectional=False"
            )

    # ------------------------------------------------------------------------------------------------
    # parallel mode
    # ------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, d_input) or tokens (B, L) -> (B, d_output) pooled, or (B, L, d_output) for "none"."""
        self._check_input(x, step=False)
        h = self.encoder(self.input_dropout(x))
        with inputs_checked():  # the blocks see activations: a blow-up there is the trainer's to report
            for block in self.blocks:
                h = block(h)
        return self.decoder(self.pool(self.final_norm(h)))

    # ------------------------------------------------------------------------------------------------
    # recurrent mode
    # ------------------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device=None, dtype=None) -> tuple:
        """The zero state: (state of block 1, ..., state of block n[, (running sum, count)])."""
        self._require_recurrent()
        check_positive_int("batch_size", batch_size)
        device = device if device is not None else self.decoder.weight.device
        dtype = dtype if dtype is not None else self.decoder.weight.dtype
        states = [b.initial_state(batch_size, device=device, dtype=dtype) for b in self.blocks]
        if self.pooling == "mean":
            states.append(self.pool.initial_state(batch_size, self.d_model, device=device, dtype=dtype))
        return tuple(states)

    def _check_state(self, state) -> None:
        n = self.n_layers + (self.pooling == "mean")
        if not isinstance(state, (tuple, list)) or len(state) != n:
            raise ValueError(
                f"state must be the tuple of {n} entries from initial_state "
                f"({self.n_layers} block states{' + the mean-pooling state' if n > self.n_layers else ''}), "
                f"got {type(state).__name__}"
                + (f" of length {len(state)}" if isinstance(state, (tuple, list)) else "")
            )

    def _stream(self, x: Tensor, state, *, step: bool):
        self._require_recurrent()
        self._check_input(x, step=step)
        self._check_state(state)
        h = self.encoder(self.input_dropout(x))
        new_states = []
        with inputs_checked():
            for block, s in zip(self.blocks, state):
                h, s = block.step(h, s) if step else block.forward_with_state(h, s)
                new_states.append(s)
        h = self.final_norm(h)
        pool_state = state[-1] if self.pooling == "mean" else None
        h, pool_state = self.pool.step(h, pool_state) if step else self.pool.forward_with_state(h, pool_state)
        if self.pooling == "mean":
            new_states.append(pool_state)
        return self.decoder(h), tuple(new_states)

    def step(self, x_t: Tensor, state) -> tuple[Tensor, tuple]:
        """x_t: (B, d_input) or tokens (B,) -> (y_t (B, d_output), new state); see the class docstring."""
        return self._stream(x_t, state, step=True)

    def forward_with_state(self, x: Tensor, state) -> tuple[Tensor, tuple]:
        """A chunk (B, Lc, d_input) or tokens (B, Lc) -> (output, new state).

        Pooling "none": (B, Lc, d_output), chunks concatenate to ``forward``. "mean" / "last": the
        prediction so far (B, d_output); after the last chunk it equals ``forward`` on the whole input.
        """
        return self._stream(x, state, step=False)
