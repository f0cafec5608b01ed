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
``ar_filter`` (sequential loops in C++ on CPU, ``lindy.kernels.ar_cpu``, with a Python fallback;
hand-written backward).

Recurrent mode, ``recurrent="exact"``: the state holds the last max_len - 1 inputs (the approx form:
projected inputs, plus the last ar_u - 1 raw ones) and the last ar_y outputs; a step costs one copy of that
window (the new state; the caller's is never written) and one GEMM of the cached time-reversed bank with
it, O(max_len K' d) (d = d_in, or d_out in the approx form: there the features then meet M_filt per
channel, which beats psi . window, a memory-bound pass with a window-sized temporary), and equals forward.
The stacked projections are cached while the parameters are unchanged (``_cached``).

``recurrent="lds"`` (SpectraLDS, Shah et al. 2025): the branch filters are the impulse responses of a
diagonal LDS of ``lds_state`` real modes fitted offline (``lindy.kernels.spectral.spectral_lds``; both
branches: lds_state/2 eigenvalues lambda and their negatives), so the spectral term is

    h_t = diag(lambda) h_{t-1} + v_{t-shift},   y_t = sum_f (C^T h_t)_f M_f     (v = u, or x_hat = u M_in)

with a state h of (d_lds, lds_state) (d_lds = d_in, or d_out in the approx form; stored as real pairs for
``diag_ssm``), plus the last ``shift`` LDS inputs, ar_u - 1 raw inputs and ar_y outputs: O(1) in the
length, O(lds_state d_lds F + F d_in d_out) per step. ``forward`` stays the exact convolution; step and
forward_with_state differ from it by the fit's error (``lds_fit().mse`` per filter; at the defaults
~1e-25 at max_len = 8192) and, past max_len tokens, by the LDS's tail (its impulse responses do not stop
at max_len taps). forward_with_state equals the step loop: a chunk is the convolution with the LDS's own
impulse responses plus the free response of the state carried in (``diag_chunk`` for the new state).

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
from lindy.kernels.diag_ssm import diag_chunk, diag_powers, diag_step
from lindy.kernels.fft_conv import causal_conv
from lindy.kernels.spectral import (
    HANKELS,
    LDS_STATE,
    LDSFit,
    ar_filter,
    lds_fit_filters,
    lds_impulse,
    spectral_conv,
    spectral_filters,
    spectral_lds,
)
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
RECURRENTS = ("exact", "lds")
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
        recurrent: "exact" (window of past inputs, equals forward) | "lds" (the distilled LDS, O(1) a step).
        lds_state: the LDS's modes per input channel (even with two branches or Hankel-L; SpectraLDS: 160).
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
        recurrent: str = "exact",
        lds_state: int = LDS_STATE,
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
        self.recurrent = check_choice("recurrent", recurrent, RECURRENTS)
        self.lds_state = check_positive_int("lds_state", lds_state)
        if (self.two_branches or hankel == "L") and lds_state % 2:
            raise ValueError(
                f"lds_state must be even with two branches or Hankel-L (+-lambda pairs), got {lds_state}"
            )
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
        self._banks: dict[tuple, object] = {}
        self._param_cache: dict[str, tuple] = {}

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
        self._param_cache.clear()

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

    def _approx_kernel(self, dtype, device, length: int) -> Tensor:
        """psi (d_out, min(length, max_len)): the first taps of the approx form's per-channel filters, both
        branches summed (only those taps are multiplied out: a short sequence pays for its length only)."""
        bank = self._bank(device, dtype)[:, :length]
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
        psi = self._approx_kernel(dtype, x.device, length)
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
        # contiguous first (the approx form's y is a transposed view): GELU's backward with an input and
        # a grad of different strides is ~5x slower (7.1 ms against 1.3 at B=8, L=1024, d=128, one thread)
        return self.glu(self.output_linear(self.dropout(self.activation(y.contiguous()))))

    # ------------------------------------------------------------------------------------------------
    # parallel mode
    # ------------------------------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> Tensor:
        y = self._fir(x)
        if self.ar_y:
            y = ar_filter(y, self.M_y)
        return self._out(y)

    # ------------------------------------------------------------------------------------------------
    # recurrent mode: the named parts of the state
    # ------------------------------------------------------------------------------------------------
    def _parts(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of each part of the state, in order (see the module docstring)."""
        d_lds = self.d_input if self.form == "exact" else self.d_model
        if self.recurrent == "lds":
            parts = [("lds", (d_lds, self.lds_state, 2))]
            if self.shift:
                parts.append(("delay", (self.shift, d_lds)))
            if self.ar_u > 1:
                parts.append(("raw", (self.ar_u - 1, self.d_input)))
        else:
            parts = [("window", (self.max_len - 1, d_lds))]
            if self.form == "approx" and self.ar_u > 1:
                parts.append(("raw", (self.ar_u - 1, self.d_input)))
        if self.ar_y:
            parts.append(("y_hist", (self.ar_y, self.d_model)))
        return parts

    def state_shape(self):
        shapes = [shape for _, shape in self._parts()]
        return shapes[0] if len(shapes) == 1 else tuple(shapes)

    def _split(self, state) -> dict[str, Tensor]:
        tensors = list(state) if isinstance(state, tuple) else [state]
        return {name: t for (name, _), t in zip(self._parts(), tensors)}

    def _join(self, parts: dict[str, Tensor]):
        tensors = [parts[name] for name, _ in self._parts()]
        return tensors[0] if len(tensors) == 1 else tuple(tensors)

    def _forward_with_state(self, x: Tensor, state) -> tuple[Tensor, object]:
        parts = self._split(state)
        fir = self._chunk_lds(x, parts) if self.recurrent == "lds" else self._chunk_window(x, parts)
        if self.ar_u and (self.recurrent == "lds" or self.form == "approx"):
            fir = fir + self._chunk_ar_inputs(x, parts)
        y = fir
        if self.ar_y:
            y = ar_filter(fir, self.M_y, parts["y_hist"])
            parts["y_hist"] = torch.cat([parts["y_hist"], y], 1)[:, -self.ar_y :]
        return self._out(y), self._join(parts)

    def _step(self, x_t: Tensor, state) -> tuple[Tensor, object]:
        parts = self._split(state)
        y = self._step_lds(x_t, parts) if self.recurrent == "lds" else self._step_window(x_t, parts)
        if self.ar_u and (self.recurrent == "lds" or self.form == "approx"):
            raw = parts.get("raw", x_t.new_zeros(x_t.shape[0], 0, self.d_input))
            recent = torch.cat([raw, x_t[:, None]], 1)  # (B, ar_u, d_in), oldest first
            y = y + torch.einsum("bji,jio->bo", recent.flip(1), self.M_u)
            if "raw" in parts:
                parts["raw"] = recent[:, 1:]
        if self.ar_y:
            y_hist = parts["y_hist"]
            y = y + torch.einsum("bji,jio->bo", y_hist.flip(1), self.M_y)
            parts["y_hist"] = torch.cat([y_hist[:, 1:], y[:, None]], 1)
        return self._out(y), self._join(parts)

    def _chunk_ar_inputs(self, x: Tensor, parts: dict[str, Tensor]) -> Tensor:
        """sum_j u_{t-j} M_u[j] over a chunk, the last ar_u - 1 inputs before it from the state."""
        raw = parts.get("raw")
        tail = raw if raw is not None else x[:, :0]
        ext = torch.cat([tail, x], 1)
        if raw is not None:
            parts["raw"] = ext[:, -tail.shape[1] :]
        return self._ar_inputs(ext)[:, tail.shape[1] :]

    # ------------------------------------------------------------------------------------------------
    # recurrent="exact": a window of the last max_len - 1 inputs (O(max_len) memory), equal to forward
    # ------------------------------------------------------------------------------------------------
    def _chunk_window(self, x: Tensor, parts: dict[str, Tensor]) -> Tensor:
        window = parts["window"]
        past = window.shape[1]
        if self.form == "exact":
            ext = torch.cat([window, x], 1)
            parts["window"] = ext[:, -past:]
            return self._fir(ext)[:, past:]
        xhat = torch.cat([window, x @ self.M_inputs], 1)
        parts["window"] = xhat[:, -past:]
        psi = self._approx_kernel(self._dtype(), x.device, xhat.shape[1])
        return causal_conv(xhat.transpose(1, 2), psi).transpose(1, 2)[:, past:]

    def _step_window(self, x_t: Tensor, parts: dict[str, Tensor]) -> Tensor:
        # one copy of the window per step (the new state; the caller's state is never written), then
        # one GEMM with the cached time-reversed bank: no per-step flip, cat of M or psi rebuild
        dtype, device = self._dtype(), x_t.device
        if self.form == "exact":
            seq = torch.cat([parts["window"], x_t[:, None]], 1)  # (B, T, d_in), oldest first
            feats = torch.matmul(self._taps(device, dtype), seq)  # (B, K', d_in)
            proj = self._cached("proj", self._spectral_params(with_ar=True), lambda: self._projections())
            y = feats.reshape(x_t.shape[0], -1) @ proj.reshape(-1, self.d_model)
        else:
            # the same GEMM with the bank, then per channel: psi . window would be 48x fewer flops but
            # memory-bound, with a window-sized temporary (fresh pages) every step; this is never slower
            seq = torch.cat([parts["window"], (x_t @ self.M_inputs)[:, None]], 1)  # (B, T, d_out)
            feats = torch.matmul(self._taps(device, dtype), seq)  # (B, K', d_out)
            mf = self._cached("lds_proj", self._spectral_params(), self._lds_projection)  # (K', d_out)
            y = (feats * mf).sum(1)
        parts["window"] = seq[:, 1:]
        return y

    @torch.compiler.disable
    def _taps(self, device, dtype) -> Tensor:
        """The bank time-reversed (K', max_len), the window's order (oldest input first)."""
        key = ("taps", device, dtype)
        if key not in self._banks:
            self._banks[key] = self._bank64().flip(1).to(device=device, dtype=dtype).contiguous()
        return self._banks[key]

    def _spectral_params(self, with_ar: bool = False) -> list[Tensor]:
        """The parameters of the spectral term's projections (exact M_phi, approx M_filters)."""
        names = ["M_phi_plus", "M_phi_minus"] if self.form == "exact" else ["M_filters", "M_filters_minus"]
        if with_ar and self.form == "exact":
            names.append("M_u")
        return [getattr(self, n) for n in names if getattr(self, n, None) is not None]

    @torch.compiler.disable
    def _cached(self, name: str, params: list[Tensor], build):
        """build() kept while ``params`` are the same tensors at the same version (a step loop rebuilds
        nothing; an optimiser step, a load_state_dict or functional_call does). Not kept where autograd
        records, so that every graph has its own copy."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in params):
            return build()
        # identity and version, and the storage: module.to() swaps p.data without a version bump
        stamp = [(p, (p._version, p.data_ptr(), p.dtype, p.device)) for p in params]
        hit = self._param_cache.get(name)
        if hit is not None and len(hit[0]) == len(stamp):
            if all(p is q and v == w for (p, v), (q, w) in zip(hit[0], stamp)):
                return hit[1]
        value = build()
        self._param_cache[name] = (stamp, value)
        return value

    # ------------------------------------------------------------------------------------------------
    # recurrent="lds": the spectral term as the distilled diagonal LDS (O(1) per token)
    # ------------------------------------------------------------------------------------------------
    def lds_fit(self) -> LDSFit:
        """The distilled LDS of this layer's filter bank (``lindy.kernels.spectral.spectral_lds``; for
        filters from ``set_filters``, ``lds_fit_filters``): eigenvalues (N,), readout (N, F), mse (F,)."""
        key = ("lds64",)
        if key not in self._banks:
            custom = getattr(self, "custom_filters", None)
            if custom is None:
                fit = spectral_lds(
                    self.max_len,
                    self.num_filters,
                    self.hankel,
                    state_size=self.lds_state,
                    two_branches=self.two_branches,
                )
            else:
                phi = custom.detach().to("cpu", torch.float64)
                fit = lds_fit_filters(
                    phi, self.lds_state, two_branches=self.two_branches, symmetric=self.hankel == "L"
                )
            self._banks[key] = fit
        return self._banks[key]

    @torch.compiler.disable
    def _lds(self, device, dtype) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(log Abar, Abar, Bbar, C) as pairs (1, N, 2) for ``diag_ssm``, and the readout (N, F)."""
        key = ("lds", device, dtype)
        if key not in self._banks:
            fit = self.lds_fit()
            lam = fit.eigenvalues
            zero = torch.zeros_like(lam)
            angle = torch.where(lam < 0, torch.full_like(lam, math.pi), zero)  # a negative real: e^(i pi)
            pairs = [
                torch.stack([lam.abs().log(), angle], -1),
                torch.stack([lam, zero], -1),
                torch.stack([torch.ones_like(lam), zero], -1),
                torch.zeros(lam.shape[0], 2, dtype=torch.float64),  # the readout is ours, not diag_ssm's
            ]
            self._banks[key] = tuple(t[None].to(device=device, dtype=dtype) for t in pairs) + (
                fit.readout.to(device=device, dtype=dtype),
            )
        return self._banks[key]

    def _lds_input(self, x: Tensor) -> Tensor:
        """The LDS's input: u (exact form) or x_hat = u M_in (approx form), last dim d_lds."""
        return x if self.form == "exact" else x @ self.M_inputs

    def _lds_projection(self) -> Tensor:
        """(F, d_in, d_out) exact form, (F, d_out) approx form: the projections of the branch filters."""
        if self.form == "exact":
            ms = [self.M_phi_plus] + ([self.M_phi_minus] if self.two_branches else [])
        else:
            plus = self.M_filters
            minus = self.M_filters if self.approx_shared_filter else getattr(self, "M_filters_minus", None)
            ms = [plus, minus] if self.two_branches else [plus]
        return torch.cat(ms, 0) if len(ms) > 1 else ms[0]

    def _step_lds(self, x_t: Tensor, parts: dict[str, Tensor]) -> Tensor:
        _, abar, bbar, c, readout = self._lds(x_t.device, self._dtype())
        v = self._lds_input(x_t)
        if self.shift:
            line = torch.cat([parts["delay"], v[:, None]], 1)  # the LDS sees u_{t - shift}
            v, parts["delay"] = line[:, 0], line[:, 1:]
        _, h = diag_step(abar, bbar, c, parts["lds"], v)  # (B, d_lds, N, 2), imaginary parts stay 0
        parts["lds"] = h
        feats = h[..., 0] @ readout  # (B, d_lds, F): the F filters applied to the LDS's input
        m = self._cached("lds_proj", self._spectral_params(), self._lds_projection)
        if self.form == "exact":
            return feats.transpose(1, 2).reshape(x_t.shape[0], -1) @ m.reshape(-1, self.d_model)
        return (feats * m.T).sum(-1)

    def _chunk_lds(self, x: Tensor, parts: dict[str, Tensor]) -> Tensor:
        """A chunk through the LDS in closed form: the driven response (a convolution with the LDS's own
        impulse responses, not the filters) plus the free response of the state carried in."""
        batch, length = x.shape[:2]
        dtype = self._dtype()
        log_abar, abar, bbar, c, readout = self._lds(x.device, dtype)
        v = self._lds_input(x)
        if self.shift:
            line = torch.cat([parts["delay"], v], 1)
            v, parts["delay"] = line[:, :length], line[:, length:]
        h0 = parts["lds"]
        m = self._lds_projection()
        n_state = readout.shape[0]
        powers = diag_powers(log_abar, length + 1)[0, :, 1:, 0].T  # (L, N): Re lambda^(t+1)
        if self.form == "exact":
            y = spectral_conv(v, self._lds_spectrum(length, x.device, dtype), m)
            gain = torch.einsum("nf,fio->nio", readout, m)  # (N, d_in, d_out)
            free = torch.einsum("bin,nio->bno", h0[..., 0], gain)
        else:
            psi = m.T @ self._lds_taps(length, x.device, dtype)  # (d_out, L)
            y = causal_conv(v.transpose(1, 2), psi).transpose(1, 2)
            free = h0[..., 0].transpose(1, 2) * (readout @ m)  # (B, N, d_out)
        y = y + torch.matmul(powers, free)
        d_lds = v.shape[-1]
        flat = h0.reshape(batch * d_lds, 1, n_state, 2)  # one channel: the modes are shared by the features
        _, h = diag_chunk(log_abar, abar, bbar, c, flat, v.transpose(1, 2).reshape(batch * d_lds, 1, length))
        h = h.view(batch, d_lds, n_state, 2)[..., 0]
        parts["lds"] = torch.stack([h, torch.zeros_like(h)], -1)  # a real LDS: drop the powers' round-off
        return y

    @torch.compiler.disable
    def _lds_taps(self, length: int, device, dtype) -> Tensor:
        """(F, L): the LDS's impulse responses sum_n readout[n, f] lambda_n^s, s = 0..L-1."""
        key = ("lds_taps", length, device, dtype)
        if key not in self._spectra:
            if len(self._spectra) >= _SPECTRA_KEPT:
                self._spectra.pop(next(iter(self._spectra)))
            fit = self.lds_fit()
            taps = lds_impulse(fit.eigenvalues, fit.readout, length).T
            self._spectra[key] = taps.to(device=device, dtype=dtype).contiguous()
        return self._spectra[key]

    @torch.compiler.disable
    def _lds_spectrum(self, length: int, device, dtype) -> Tensor:
        """rfft of the LDS's impulse responses at n = 2 length: (F, length + 1)."""
        key = ("lds_spectrum", length, device, dtype)
        if key not in self._spectra:
            fit = self.lds_fit()
            spec = torch.fft.rfft(lds_impulse(fit.eigenvalues, fit.readout, length).T, n=2 * length)
            cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
            if len(self._spectra) >= _SPECTRA_KEPT:
                self._spectra.pop(next(iter(self._spectra)))
            self._spectra[key] = spec.to(device=device, dtype=cdtype)
        return self._spectra[key]


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
        # the distilled LDS: at max_len = 16 the fit is exact to round-off (MSE ~ 1e-32, N > max_len)
        "lds-both": dict(num_filters=3, max_len=16, recurrent="lds"),
        "lds-positive-ar": dict(
            num_filters=3,
            max_len=16,
            branches="positive",
            shift=2,
            ar_u=3,
            ar_y=2,
            recurrent="lds",
            lds_state=40,
        ),
        "lds-approx-ar": dict(
            num_filters=3, max_len=16, form="approx", shift=1, ar_u=2, ar_y=1, recurrent="lds", lds_state=64
        ),
        "lds-hankel-l": dict(num_filters=3, max_len=16, hankel="L", recurrent="lds", lds_state=40),
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
        dict(recurrent="ring"),
        dict(lds_state=0),
        dict(lds_state=7),  # odd, with two branches
    ],
    bench_kwargs=dict(num_filters=24, max_len=8192),
)
