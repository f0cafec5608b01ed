"""STU: the Spectral Transform Unit (Agarwal, Suo, Chen, Hazan 2024, arXiv 2312.06837; Flash STU 2409.10489).

The input u (B, L, d_in) is convolved with K fixed filters phi_k (the top eigenvectors of a Hankel matrix
times sigma^(1/4), ``lindy.kernels.spectral``) and only projections are learned. With s the lag,

    exact:   y_t = sum_k sum_s u_{t-s} [phi_k[s'] M+_k + (-1)^s' phi_k[s'] M-_k]
                   + sum_{j < ar_u} u_{t-j} M_u[j] + sum_{j=1}^{ar_y} y_{t-j} M_y[j-1],
             s' = s - shift (terms with s' < 0 vanish)
    approx:  the tensordot approximation M_k[i, o] ~ M_in[i, o] M_filt[k, o]: per-channel filters
             psi_o[s] = sum_k phi_k[s'] (M_filt+[k, o] + (-1)^s' M_filt-[k, o]) on x_hat = u M_in.

(vectors are rows: u_t M). ``branches="both"`` keeps the (-1)^s branch (the paper, flash-stu-2),
``"positive"`` drops it (google-deepmind/spectral_ssm); Hankel-L (``hankel="L"``) always has one branch.
The DeepMind AR-STU is ``branches="positive", shift=2, ar_u=3, ar_y=2``; flash-stu-2's exact mode is
``form="exact"`` and its default mode ``form="approx", approx_shared_filter=True``: its code feeds one psi
to both branches, so odd lags cancel and even lags double (``approx_shared_filter=False``, the default,
learns one M_filt per branch as the factorisation means).

Any length: the filters are those of ``max_len``, used causally (tap s of the filters at lag s, zero
beyond max_len taps), so a prefix's outputs do not depend on the whole sequence's length and streaming
equals forward; the references only take L = seq_len, where lindy equals them.

Exact form, fast: the filters (both branches, the shift and the AR_u taps as delta filters) are one fixed
bank whose spectrum is cached, and ``spectral_conv`` applies the batch-independent frequency response
W(f) = sum_k Phi_k(f) M_k (hand-written backward, no (B, L, K, d) features). The output AR term is
``ar_filter`` (a sequential loop, hand-written backward). Recurrent mode: the state holds the last
max_len - 1 inputs (the approx form: projected inputs, plus the last ar_u - 1 raw ones) and the last ar_y
outputs; a step costs O(max_len K d_in + K d_in d_out) (exact) and equals forward.

Initialisation (``init``): ``"xavier"`` (flash-stu-2: Xavier-normal M+-, M_in, M_filt) or ``"zero"``
(spectral_ssm: M_phi = 0, and the paper's "all M matrices at 0"); M_u ~ truncated normal on [-2, 2] times
d_out^-1/2 and M_y = 0 in both. M_y carries its own lr (``m_y_lr``, default 5e-5, DeepMind's) and no
weight decay. ``output="glu"`` appends GELU, dropout, Linear(d, 2d) and GLU (DeepMind's block, lindy's
other layers); ``"none"`` returns the bare STU (what the references' STU modules return).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lindy._checks import check_count
from lindy.kernels.fft_conv import causal_conv
from lindy.kernels.spectral import HANKELS, ar_filter, spectral_conv, spectral_filters
from lindy.layers.base import (
    SequenceLayer,
    check_choice,
    check_finite_number,
    check_positive_int,
    register_layer,
    register_ssm_param,
)

__all__ = ["STU"]

FORMS = ("exact", "approx")
BRANCHES = ("both", "positive")
INITS = ("xavier", "zero")
OUTPUTS = ("glu", "none")
_SPECTRA_KEPT = 8  # spectra of this many (length, device, dtype) kept per layer


class STU(SequenceLayer):
    """Spectral Transform Unit. x: (batch, length, d_input) -> y: (batch, length, d_model).

    Args:
        d_model: d_out. d_input: d_in (default d_model).
        num_filters: K, the number of Hankel eigenvectors. max_len: the filters' length (any L works).
        hankel: "standard" | "L" (one branch). form: "exact" | "approx" (tensordot).
        branches: "both" | "positive". shift: delay of the spectral term (DeepMind: 2).
        ar_u, ar_y: autoregressive depths on the inputs (lags 0..ar_u-1) and outputs (lags 1..ar_y).
        approx_shared_filter: the approx form's reference quirk (one M_filt for both branches).
        init: "xavier" | "zero". m_y_lr: lr cap of M_y (None: the global lr). output: "glu" | "none".
        dropout: after the GELU of the "glu" output.
    Parameters: M_phi_plus (K, d_in, d_out) [M_phi_minus] (exact) or M_inputs (d_in, d_out), M_filters
    (K, d_out) [M_filters_minus] (approx); M_u (ar_u, d_in, d_out); M_y (ar_y, d_out, d_out).
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_input: int | None = None,
        num_filters: int = 24,
        max_len: int = 1024,
        hankel: str = "standard",
        form: str = "exact",
        branches: str = "both",
        shift: int = 0,
        ar_u: int = 0,
        ar_y: int = 0,
        approx_shared_filter: bool = False,
        init: str = "xavier",
        m_y_lr: float | None = 5e-5,
        output: str = "glu",
        dropout: float = 0.0,
    ):
        super().__init__(d_model, d_input=d_input)
        self.num_filters = check_positive_int("num_filters", num_filters)
        self.max_len = check_positive_int("max_len", max_len)
        if max_len < 2 or num_filters > max_len:
            raise ValueError(f"max_len must be >= 2 and >= num_filters={num_filters}, got {max_len}")
        self.hankel = check_choice("hankel", hankel, HANKELS)
        self.form = check_choice("form", form, FORMS)
        self.branches = check_choice("branches", branches, BRANCHES)
        self.shift = check_count("shift", shift, minimum=0)
        self.ar_u = check_count("ar_u", ar_u, minimum=0)
        self.ar_y = check_count("ar_y", ar_y, minimum=0)
        if shift >= max_len or ar_u > max_len:
            raise ValueError(f"shift and ar_u must be < max_len={max_len}, got shift={shift}, ar_u={ar_u}")
        self.init = check_choice("init", init, INITS)
        self.output = check_choice("output", output, OUTPUTS)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        if m_y_lr is not None:
            check_finite_number("m_y_lr", m_y_lr, positive=True)
        self.approx_shared_filter = bool(approx_shared_filter)
        self.two_branches = branches == "both" and hankel == "standard"
        d_in, d_out, K = self.d_input, d_model, num_filters
        zero = init == "zero"

        def xavier(*shape):
            t = torch.empty(*shape)
            return t.zero_() if zero else nn.init.xavier_normal_(t)

        if form == "exact":
            self.M_phi_plus = nn.Parameter(xavier(K, d_in, d_out))
            if self.two_branches:
                self.M_phi_minus = nn.Parameter(xavier(K, d_in, d_out))
        else:
            self.M_inputs = nn.Parameter(xavier(d_in, d_out))
            self.M_filters = nn.Parameter(xavier(K, d_out))
            if self.two_branches and not self.approx_shared_filter:
                self.M_filters_minus = nn.Parameter(xavier(K, d_out))
        if ar_u:
            m_u = nn.init.trunc_normal_(torch.empty(ar_u, d_in, d_out), 0.0, 1.0, -2.0, 2.0) / math.sqrt(
                d_out
            )
            self.M_u = nn.Parameter(m_u)
        if ar_y:
            register_ssm_param(self, "M_y", torch.zeros(ar_y, d_out, d_out), lr=m_y_lr, weight_decay=0.0)
        if output == "glu":
            self.activation = nn.GELU()
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            self.output_linear = nn.Linear(d_out, 2 * d_out)
            self.glu = nn.GLU(dim=-1)
        self._spectra: dict[tuple, Tensor] = {}
        self._banks: dict[tuple, Tensor] = {}

    # ------------------------------------------------------------------------------------------------
    # the fixed filter bank
    # ------------------------------------------------------------------------------------------------
    def _bank64(self) -> Tensor:
        """(K', max_len) float64: the branch filters (delayed by shift), then (exact form) the ar_u deltas."""
        key = ("bank64",)
        if key not in self._banks:
            custom = getattr(self, "custom_filters", None)
            if custom is not None:
                phi = custom.detach().to("cpu", torch.float64).T
            else:
                phi = spectral_filters(self.max_len, self.num_filters, self.hankel).T  # (K, T)
            rows = [phi]
            if self.two_branches:
                rows.append(phi * (-1.0) ** torch.arange(self.max_len, dtype=torch.float64))
            bank = torch.cat(rows, 0)
            bank = torch.cat(
                [bank.new_zeros(bank.shape[0], self.shift), bank[:, : self.max_len - self.shift]], 1
            )
            if self.form == "exact" and self.ar_u:
                bank = torch.cat([bank, torch.eye(self.ar_u, self.max_len, dtype=torch.float64)], 0)
            self._banks[key] = bank
        return self._banks[key]

    def set_filters(self, phi: Tensor) -> None:
        """Use the filters ``phi`` (max_len, K) instead of the Hankel ones (interop with filters computed
        elsewhere). They become a buffer ``custom_filters``, saved in the state_dict."""
        shape = (self.max_len, self.num_filters)
        if tuple(phi.shape) != shape or not bool(torch.isfinite(phi).all()):
            raise ValueError(f"phi must be a finite tensor of shape {shape}, got {tuple(phi.shape)}")
        ref = self._dtype()
        self.register_buffer("custom_filters", phi.detach().to(dtype=ref).clone())
        self._banks.clear()
        self._spectra.clear()

    @torch.compiler.disable
    def _bank(self, device, dtype) -> Tensor:
        key = (device, dtype)
        if key not in self._banks:
            self._banks[key] = self._bank64().to(device=device, dtype=dtype)
        return self._banks[key]

    @torch.compiler.disable
    def _spectrum(self, length: int, device, dtype) -> Tensor:
        """rfft of the bank's first min(length, max_len) taps at n = 2 length: (K', length + 1)."""
        key = (length, device, dtype)
        if key not in self._spectra:
            if len(self._spectra) >= _SPECTRA_KEPT:
                self._spectra.pop(next(iter(self._spectra)))
            bank = self._bank64()[:, :length]
            spec = torch.fft.rfft(bank, n=2 * length)
            cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
            self._spectra[key] = spec.to(device=device, dtype=cdtype)
        return self._spectra[key]

    def _projections(self) -> Tensor:
        """M stacked in the bank's row order: (K', d_in, d_out) (exact form)."""
        ms = [self.M_phi_plus] + ([self.M_phi_minus] if self.two_branches else [])
        if self.ar_u:
            ms.append(self.M_u)
        return torch.cat(ms, 0) if len(ms) > 1 else ms[0]

    def _approx_kernel(self, dtype, device) -> Tensor:
        """psi (d_out, max_len): per-channel filters of the approx form, both branches summed."""
        bank = self._bank(device, dtype)
        plus = self.M_filters
        minus = self.M_filters if self.approx_shared_filter else getattr(self, "M_filters_minus", None)
        mf = torch.cat([plus, minus], 0) if self.two_branches else plus
        return mf.T @ bank

    # ------------------------------------------------------------------------------------------------
    # the moving-average part (everything but the output AR), on a sequence and its history
    # ------------------------------------------------------------------------------------------------
    def _fir(self, x: Tensor, xhat: Tensor | None = None) -> Tensor:
        """(B, L, d_in) -> (B, L, d_out), zero history; ``xhat`` = x M_in in the approx form if known."""
        length = x.shape[1]
        dtype = self._dtype()
        if self.form == "exact":
            return spectral_conv(x, self._spectrum(length, x.device, dtype), self._projections())
        if xhat is None:
            xhat = x @ self.M_inputs
        psi = self._approx_kernel(dtype, x.device)[:, :length]
        y = causal_conv(xhat.transpose(1, 2), psi).transpose(1, 2)
        return y + self._ar_inputs(x) if self.ar_u else y

    def _ar_inputs(self, x: Tensor) -> Tensor:
        """sum_j u_{t-j} M_u[j] (approx form; the exact form has it in its bank)."""
        length = x.shape[1]
        y = x @ self.M_u[0]
        for j in range(1, min(self.ar_u, length)):
            y = y + nn.functional.pad(x[:, : length - j] @ self.M_u[j], (0, 0, j, 0))
        return y

    def _dtype(self) -> torch.dtype:
        return self.param_dtype or torch.float32

    def _out(self, y: Tensor) -> Tensor:
        if self.output == "none":
            return y
        return self.glu(self.output_linear(self.dropout(self.activation(y))))

    # ------------------------------------------------------------------------------------------------
    # parallel mode
    # ------------------------------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> Tensor:
        y = self._fir(x)
        if self.ar_y:
            y = ar_filter(y, self.M_y)
        return self._out(y)

    # ------------------------------------------------------------------------------------------------
    # recurrent mode: windows of past inputs (O(max_len) memory), exact
    # ------------------------------------------------------------------------------------------------
    def _shapes(self) -> list[tuple[int, int]]:
        window = self.max_len - 1
        if self.form == "exact":
            shapes = [(window, self.d_input)]
        else:
            shapes = [(window, self.d_model)]
            if self.ar_u > 1:
                shapes.append((self.ar_u - 1, self.d_input))
        if self.ar_y:
            shapes.append((self.ar_y, self.d_model))
        return shapes

    def state_shape(self):
        shapes = self._shapes()
        return shapes[0] if len(shapes) == 1 else tuple(shapes)

    def _split(self, state) -> tuple[Tensor, Tensor | None, Tensor | None]:
        parts = list(state) if isinstance(state, tuple) else [state]
        window = parts.pop(0)
        raw = parts.pop(0) if self.form == "approx" and self.ar_u > 1 else None
        y_hist = parts.pop(0) if self.ar_y else None
        return window, raw, y_hist

    def _join(self, window, raw, y_hist):
        parts = [window] + ([raw] if raw is not None else []) + ([y_hist] if y_hist is not None else [])
        return parts[0] if len(parts) == 1 else tuple(parts)

    def _forward_with_state(self, x: Tensor, state) -> tuple[Tensor, object]:
        window, raw, y_hist = self._split(state)
        past = window.shape[1]
        if self.form == "exact":
            ext = torch.cat([window, x], 1)
            fir = self._fir(ext)[:, past:]
            new_window = ext[:, -past:]
        else:
            xhat = torch.cat([window, x @ self.M_inputs], 1)
            psi = self._approx_kernel(self._dtype(), x.device)[:, : xhat.shape[1]]
            fir = causal_conv(xhat.transpose(1, 2), psi).transpose(1, 2)[:, past:]
            new_window = xhat[:, -past:]
            if self.ar_u:
                tail = raw if raw is not None else x[:, :0]
                ext = torch.cat([tail, x], 1)
                fir = fir + self._ar_inputs(ext)[:, tail.shape[1] :]
                raw = ext[:, -tail.shape[1] :] if raw is not None else None
        y = fir
        if self.ar_y:
            y = ar_filter(fir, self.M_y, y_hist)
            y_hist = torch.cat([y_hist, y], 1)[:, -self.ar_y :]
        return self._out(y), self._join(new_window, raw, y_hist)

    def _step(self, x_t: Tensor, state) -> tuple[Tensor, object]:
        window, raw, y_hist = self._split(state)
        dtype = self._dtype()
        bank = self._bank(x_t.device, dtype)  # (K', T): tap s at column s
        if self.form == "exact":
            seq = torch.cat([window, x_t[:, None]], 1)  # (B, T, d_in), oldest first
            feats = torch.einsum("ks,bsi->bki", bank.flip(1), seq)
            y = torch.einsum("bki,kio->bo", feats, self._projections())
            new_window = seq[:, 1:]
        else:
            seq = torch.cat([window, (x_t @ self.M_inputs)[:, None]], 1)
            psi = self._approx_kernel(dtype, x_t.device)
            y = torch.einsum("os,bso->bo", psi.flip(1), seq)
            new_window = seq[:, 1:]
            if self.ar_u:
                tail = raw if raw is not None else x_t.new_zeros(x_t.shape[0], 0, self.d_input)
                recent = torch.cat([tail, x_t[:, None]], 1)  # (B, ar_u, d_in), oldest first
                y = y + torch.einsum("bji,jio->bo", recent.flip(1), self.M_u)
                raw = recent[:, 1:] if raw is not None else None
        if self.ar_y:
            y = y + torch.einsum("bji,jio->bo", y_hist.flip(1), self.M_y)
            y_hist = torch.cat([y_hist[:, 1:], y[:, None]], 1)
        return self._out(y), self._join(new_window, raw, y_hist)


register_layer(
    "stu",
    STU,
    test_configs={
        "exact-both": dict(num_filters=3, max_len=16),
        "exact-positive-ar": dict(num_filters=3, max_len=16, branches="positive", shift=2, ar_u=3, ar_y=2),
        "exact-hankel-l": dict(num_filters=3, max_len=16, hankel="L", output="none"),
        "approx-both": dict(num_filters=3, max_len=16, form="approx"),
        "approx-shared": dict(num_filters=3, max_len=16, form="approx", approx_shared_filter=True),
        "approx-ar": dict(
            num_filters=3, max_len=16, form="approx", branches="positive", shift=1, ar_u=2, ar_y=1
        ),
        "exact-d-input": dict(num_filters=2, max_len=8, d_input=3, ar_u=1, ar_y=1, init="zero"),
    },
    invalid_configs=[
        dict(num_filters=0),
        dict(max_len=1),
        dict(num_filters=9, max_len=8),
        dict(hankel="M"),
        dict(form="tensordot"),
        dict(branches="negative"),
        dict(shift=-1),
        dict(ar_u=2.5),
        dict(ar_y=-1),
        dict(init="normal"),
        dict(output="mlp"),
        dict(dropout=2.0),
        dict(m_y_lr=float("nan")),
    ],
    bench_kwargs=dict(num_filters=24, max_len=8192),
)
