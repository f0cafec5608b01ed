"""The sequence model every lindy experiment trains: encoder -> residual blocks -> pooling -> decoder.

    x (B, L, d_input) float  --Linear-->  h (B, L, d_model)            (or x (B, L) long --Embedding-->)
    h <- block_i(h), i = 1..n_layers        (ResidualBlock around any contract layer)
    h <- Norm(h)                            (prenorm only: the blocks leave the stream un-normalised)
    pooling "mean" | "last"  ->  (B, d_model) ;  "none" -> (B, L, d_model)
    y = decoder(h)                          (B, d_output) or (B, L, d_output)

The recurrent mode (``initial_state``, ``step``, ``forward_with_state``) runs the same model as an RNN.
With pooling "none" a step returns that step's output. With "mean" or "last" it returns the prediction
from everything seen so far (the decoder is linear, so decoding the running mean equals the mean of the
decoded states): after the last input it equals ``forward`` on the whole sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lindy.layers.base import check_choice, check_finite_number, check_loaded_finite, check_positive_int
from lindy.models.blocks import ResidualBlock, make_norm

POOLINGS = ("mean", "last", "none")


class SequenceModel(nn.Module):
    """Encoder, ``n_layers`` residual blocks of a contract layer, pooling and a linear decoder.

    Args:
        d_input: input features per step, or the vocabulary size when ``tokens``.
        d_output: classes, regression targets, or vocabulary size.
        d_model: the width of the residual stream (H).
        n_layers: number of residual blocks.
        layer: registered layer name (``"s4d"``) or a SequenceLayer class; ``layer_kwargs`` its options.
        tokens: inputs are integer tokens (B, L) embedded by nn.Embedding(d_input, d_model).
        prenorm: pre-norm (x + f(Norm x)) or post-norm (Norm(x + f(x))) residual blocks.
        norm: "layer" | "batch" | "rms" | "none".
        dropout: residual dropout.
        mlp: None | "mlp" | "glu": a position-wise feed-forward part in each block, width mlp_ratio * H.
        pooling: "mean" | "last" | "none" (per-step outputs).
        tie_embeddings: share the embedding matrix with the decoder (tokens in, vocabulary out).
        residual: skip connections around each block (False: a plain stack of layers).
    State: a list with one state per block, plus (running sum, count) for mean pooling.
    """

    def __init__(
        self,
        d_input: int,
        d_output: int,
        *,
        d_model: int = 128,
        n_layers: int = 4,
        layer: str | type = "s4d",
        layer_kwargs: dict | None = None,
        tokens: bool = False,
        prenorm: bool = True,
        norm: str = "layer",
        dropout: float = 0.0,
        mlp: str | None = None,
        mlp_ratio: int = 2,
        pooling: str = "mean",
        tie_embeddings: bool = False,
        residual: bool = True,
    ):
        super().__init__()
        self.d_input = check_positive_int("d_input", d_input)
        self.d_output = check_positive_int("d_output", d_output)
        check_positive_int("d_model", d_model)
        check_positive_int("n_layers", n_layers)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        self.tokens = bool(tokens)
        self.d_model = d_model
        self.encoder = nn.Embedding(d_input, d_model) if tokens else nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(
            ResidualBlock(
                d_model,
                layer,
                layer_kwargs,
                prenorm=prenorm,
                norm=norm,
                dropout=dropout,
                ff=mlp,
                ff_ratio=mlp_ratio,
                residual=residual,
            )
            for _ in range(n_layers)
        )
        self.final_norm = make_norm(norm, d_model) if prenorm else nn.Identity()
        self.decoder = nn.Linear(d_model, d_output)
        if tie_embeddings:
            if not tokens or d_input != d_output:
                raise ValueError(
                    "tie_embeddings needs tokens=True and d_input == d_output (vocabulary in and out), "
                    f"got tokens={tokens}, d_input={d_input}, d_output={d_output}"
                )
            self.decoder.weight = self.encoder.weight
        self.register_load_state_dict_post_hook(check_loaded_finite)

    @property
    def recurrent(self) -> bool:
        return all(block.recurrent for block in self.blocks)

    # ------------------------------------------------------------------------------------------------
    def _check_input(self, x, *, step: bool) -> None:
        want = "(batch,)" if step else "(batch, length)"
        if self.tokens:
            if not isinstance(x, Tensor) or x.dim() != (1 if step else 2):
                raise ValueError(
                    f"x must be integer tokens of shape {want}, got {getattr(x, 'shape', type(x))}"
                )
            if x.is_floating_point() or x.is_complex():
                raise TypeError(f"x must hold integer token ids (tokens=True), got dtype {x.dtype}")
        else:
            rank = 2 if step else 3
            shape = f"{want[:-1]}, d_input={self.d_input})"
            if not isinstance(x, Tensor) or x.dim() != rank:
                raise ValueError(f"x must have {rank} dims {shape}, got {getattr(x, 'shape', type(x))}")
            if x.shape[-1] != self.d_input:
                raise ValueError(f"x last dim must be d_input={self.d_input}, got shape {tuple(x.shape)}")
            if not x.is_floating_point():
                raise TypeError(
                    f"x must be a floating tensor of features (tokens=False), got dtype {x.dtype}"
                )
        if not step and x.shape[1] == 0:
            raise ValueError(f"x must have length >= 1, got shape {tuple(x.shape)}")

    def _encode(self, x: Tensor) -> Tensor:
        if not self.tokens:
            dtype = self.encoder.weight.dtype
            autocast = torch.is_autocast_enabled(x.device.type) if x.device.type in ("cpu", "cuda") else False
            if x.dtype != dtype and not autocast:
                raise TypeError(
                    f"x has dtype {x.dtype} but the model's parameters are {dtype}; convert one of them, "
                    "or run under torch.autocast"
                )
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, d_input) or tokens (B, L) -> (B, d_output) pooled, or (B, L, d_output)."""
        self._check_input(x, step=False)
        h = self._encode(x)
        for block in self.blocks:
            h = block(h)
        h = self.final_norm(h)
        if self.pooling == "mean":
            h = h.mean(1)
        elif self.pooling == "last":
            h = h[:, -1]
        return self.decoder(h)

    # ------------------------------------------------------------------------------------------------
    def initial_state(self, batch_size: int, device=None, dtype=None) -> list:
        """One state per block, then (running sum (B, d_model), count) for mean pooling."""
        if not self.recurrent:
            raise NotImplementedError(
                "this model has a layer without a recurrent form (bidirectional); it cannot stream"
            )
        device = device if device is not None else self.decoder.weight.device
        dtype = dtype if dtype is not None else self.decoder.weight.dtype
        states = [b.initial_state(batch_size, device=device, dtype=dtype) for b in self.blocks]
        if self.pooling == "mean":
            states.append((torch.zeros(batch_size, self.d_model, device=device, dtype=dtype), 0))
        return states

    def _stream(self, x: Tensor, state: list, *, step: bool):
        if not self.recurrent:
            raise NotImplementedError(
                "this model has a layer without a recurrent form (bidirectional); it cannot stream"
            )
        self._check_input(x, step=step)
        h = self._encode(x)
        new_states = []
        for block, s in zip(self.blocks, state):
            h, s = block.step(h, s) if step else block.forward_with_state(h, s)
            new_states.append(s)
        h = self.final_norm(h)
        if self.pooling == "none":
            return self.decoder(h), new_states
        if self.pooling == "last":
            return self.decoder(h if step else h[:, -1]), new_states
        total, count = state[-1]
        total = total + (h if step else h.sum(1))
        count = count + (1 if step else h.shape[1])
        new_states.append((total, count))
        return self.decoder(total / count), new_states

    def step(self, x_t: Tensor, state: list):
        """x_t: (B, d_input) or tokens (B,) -> (output, new state); see the module docstring."""
        return self._stream(x_t, state, step=True)

    def forward_with_state(self, x: Tensor, state: list):
        """A chunk (B, Lc, d_input) or (B, Lc) -> (output, new state); chunks concatenate to forward."""
        return self._stream(x, state, step=False)
