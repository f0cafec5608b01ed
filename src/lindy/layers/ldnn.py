"""LDNN: the multi-head MIMO diagonal SSM (Liang & Li 2024, "Linear Dynamics-embedded Neural Network for
Long-Sequence Modeling"; reference code leonty1/DeepLDNN, class ``SSM``).

With S heads, the H features split into S groups of h = H/S and each head runs one MIMO diagonal system with
n = d_state/S complex modes (per channel c of ``channels``; all blocks are independent):

    x_n'(t) = Lambda_n x_n(t) + (B u_s)_n(t),   y_s = 2 C Re(x) + D (.) u_s     (B: n x h, C: h x n real)

ZOH with one step dt_n per state ("disentangle then FFT"): v = B u_s, then per state the real kernel
K_n[l] = Re(beta_n exp(l Lambda_n dt_n)), beta_n = (exp(Lambda_n dt_n) - 1)/Lambda_n, and x_n = K_n * v_n
by causal FFT convolution. Bidirectional uses the same kernel mirrored (no extra parameters):
x[t] = sum_l K[l] v[t-l] + sum_l K[l] v[t+1+l]. Recurrent mode: x_t = exp(Lambda dt) x_{t-1} + beta v_t.
The factor 2 (``conj_sym``) counts each mode's implicit conjugate. Then the output path of the reference:
activation, dropout + head mixer Linear(H, H) when S > 1, channel mixer Linear(C H, H) when channels > 1,
and the post-activation (``half_glu1``: z = drop(GELU(y)), z * sigmoid(W z + b); ``half_glu2``:
y * sigmoid(W z + b); ``full_glu``: (W1 z + b1) * sigmoid(W2 z + b2); or a plain activation).

Lambda is stored raw as real pairs (channels, S, n, 2); the eigenvalues are constrain(raw) (``lambda_real``
clip: min(re, -max_real_lambda), softplus: -softplus(re), sigmoid: -sigmoid(re), gaussian: -exp(-re^2);
``lambda_imag`` as the reference's ``version_A_imag``). Two inits (a named flag, as DESIGN asks):

- ``init="paper"``: -1/2 - i w_k with n distinct frequencies w_k of HiPPO-LegS of size 2n (one mode of each
  conjugate pair, the S5-style diagonal init the paper describes), B = Re(V^* B0) on their eigenvectors.
- ``init="reference"``: DeepLDNN's init exactly: the first n eigenpairs of torch.linalg.eig(S (-i)) of the
  LegS normal part (size 2n with conj_sym, else n), in LAPACK's order, Lambda = mean(diag S) + i eig, then
  Lambda <- -|Re| - i|Im|: real part -1 and each of the n/2 highest frequencies twice; the same draws in the
  same order (B0, C0, C, log dt, the Linear layers), so a seed gives the reference's tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lindy.kernels.complex_pairs import cabs2, cmul, conj
from lindy.kernels.diag_ssm import diag_chunk, diag_step
from lindy.kernels.discretize import discretize_diag
from lindy.kernels.fft_conv import bidirectional_conv, causal_conv
from lindy.kernels.hippo import normal_eig
from lindy.kernels.vandermonde import vandermonde_kernel
from lindy.layers.base import (
    KernelCache,
    SequenceLayer,
    check_choice,
    check_dt_range,
    check_finite_number,
    check_positive_int,
    init_log_dt,
    register_layer,
    register_ssm_param,
)

__all__ = ["LDNN", "ldnn_eigen_init", "ldnn_init", "constrain_lambda"]

INITS = ("paper", "reference")
LAMBDA_REAL = ("clip", "softplus", "sigmoid", "gaussian")
LAMBDA_IMAG = ("same", "softplus", "sigmoid", "gaussian", "clip", "zero", "negative")
D_FORMS = ("vector", "matrix", "none")
DISCRETIZATIONS = ("zoh", "bilinear")
MATRIX_INITS = ("hippo", "trunc_normal", "normal")
GATES = ("half_glu1", "half_glu2", "full_glu")
PLAIN = {
    None: lambda y: y,
    "identity": lambda y: y,
    "gelu": F.gelu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "silu": F.silu,
    "swish": F.silu,
    "sigmoid": torch.sigmoid,
    "leakyrelu": lambda y: F.leaky_relu(y, 0.05),  # the reference's slope
}
ACTIVATIONS = (*PLAIN, *GATES)
#: the parameters with their own lr hint; the reference's defaults when ``lr`` is None (C, D: global lr)
LR_KEYS = ("log_dt", "Lambda", "B", "C", "D")
DEFAULT_LR = {"log_dt": 1e-3, "Lambda": 1e-3, "B": 1e-3, "C": None, "D": None}


# ----------------------------------------------------------------------------------------------------
# eigenvalues: constraint and initialisation
# ----------------------------------------------------------------------------------------------------
def constrain_lambda(raw: Tensor, real: str = "clip", imag: str = "same", max_real: float = 1e-4):
    """(Re Lambda, Im Lambda), each (...,), from the stored pairs raw (..., 2).

    Imaginary options (the reference's ``version_A_imag``): same, softplus, sigmoid, gaussian (exp(im^2),
    the reference's formula), clip (to [-1, 1]), zero, negative (min(im, -1e-4)).
    """
    re, im = raw[..., 0], raw[..., 1]
    if real == "clip":
        re = re.clamp(max=-max_real)
    elif real == "softplus":
        re = -F.softplus(re)
    elif real == "sigmoid":
        re = -torch.sigmoid(re)
    else:
        re = -torch.exp(-(re**2))
    if imag == "softplus":
        im = F.softplus(im)
    elif imag == "sigmoid":
        im = torch.sigmoid(im)
    elif imag == "gaussian":
        im = torch.exp(im**2)
    elif imag == "clip":
        im = im.clamp(-1.0, 1.0)
    elif imag == "zero":
        im = im * 0
    elif imag == "negative":
        im = im.clamp(max=-1e-4)
    return re, im


def _unconstrain_real(value: float, real: str) -> float:
    """The raw real part whose constrained value is ``value`` (< 0) (the paper init stores it)."""
    if real == "softplus":
        return math.log(math.expm1(-value))
    if real == "sigmoid":
        return math.log(-value / (1 + value))
    if real == "gaussian":
        return math.sqrt(-math.log(-value))
    return value


def _reference_eig(size: int) -> tuple[Tensor, Tensor]:
    """DeepLDNN's HiPPO eigenpairs in its dtypes (float32 / complex64) and LAPACK's order: (size,), V."""
    k = torch.arange(size)
    q = torch.sqrt(1 + 2 * k)  # float32, as the reference's integer arange gives
    A = -(torch.tril(q[:, None] * q[None, :]) - torch.diag(k))
    p = torch.sqrt(k + 0.5).to(torch.complex64)
    S = A.to(torch.complex64) + p[:, None] * p[None, :]
    shift = torch.diagonal(S).mean()
    eig, V = torch.linalg.eig(S * -1j)
    # shift + i eig = -1 + i omega: the reference's eigenvalues (real part -1, not -1/2)
    return shift * torch.ones_like(eig) + 1j * eig, V


def ldnn_eigen_init(init: str, n: int, conj_sym: bool = True) -> tuple[Tensor, Tensor]:
    """(Lambda (n,) complex, V (rows, n) complex): n eigenvalues, Lambda = -|Re| - i|Im|, and eigenvectors.

    ``paper``: HiPPO-LegS of size 2n, one of each conjugate pair: -1/2 - i w_k, w_k distinct (complex128).
    ``reference``: DeepLDNN's first n of ``eig`` on size 2n (conj_sym) or n: -1 - i w, duplicated (complex64).
    """
    check_choice("init", init, INITS)
    n = check_positive_int("n", n)
    if init == "paper":
        w, V = normal_eig("legs", 2 * n)
        w, V = w[1::2], V[:, 1::2]  # the Im < 0 member of each pair, by decreasing frequency
    else:
        w, V = _reference_eig(2 * n if conj_sym else n)
        w, V = w[:n], V[:, :n]
    return torch.complex(-w.real.abs(), -w.imag.abs()), V


def _draw(kind: str, shape: tuple[int, ...]) -> Tensor:
    """A real init of ``shape`` drawn as the reference draws it: a pairs tensor (..., 2), real part kept."""
    t = torch.empty(*shape, 2)
    if kind == "trunc_normal":
        nn.init.trunc_normal_(t)
    else:
        nn.init.normal_(t)
    return t[..., 0].contiguous()


def ldnn_init(
    init: str,
    channels: int,
    heads: int,
    h: int,
    n: int,
    *,
    conj_sym: bool = True,
    B_init: str = "hippo",
    C_init: str = "trunc_normal",
    dt_range: tuple[float, float] = (1e-3, 1e-1),
    dt_per_state: bool = True,
    lambda_real: str = "clip",
) -> dict[str, Tensor]:
    """Initial float32 ``Lambda`` (C, S, n, 2) (raw), ``log_dt`` (C, S, n or 1), ``B`` (C, S, n, h), ``C``
    (C, S, h, n), drawn as the reference draws them, in its order: B0 and C0 (complex truncated normals of
    the hippo B = Re(V^* B0) and C = Re(C0 V), drawn whatever B_init and C_init), B and C if not hippo,
    log dt. Lambda, B0's projection and the skip are the same for every head and channel.
    """
    lam, V = ldnn_eigen_init(init, n, conj_sym)
    rows = V.shape[0]
    B0 = torch.complex(
        nn.init.trunc_normal_(torch.empty(rows, h)), nn.init.trunc_normal_(torch.empty(rows, h))
    )
    shape = (channels, heads, h, rows)
    C0 = torch.complex(nn.init.trunc_normal_(torch.empty(shape)), nn.init.trunc_normal_(torch.empty(shape)))
    if B_init == "hippo":
        B = (V.conj().T @ B0.to(V.dtype)).real.float().expand(channels, heads, n, h).clone()
    else:
        B = _draw(B_init, (channels, heads, n, h))
    C = (C0.to(V.dtype) @ V).real.float() if C_init == "hippo" else _draw(C_init, (channels, heads, h, n))
    dt_shape = (channels, heads, n if dt_per_state else 1)
    if init == "reference":  # the reference's float32 arithmetic, for the same bits
        lo, hi = (torch.log(torch.tensor(v)) for v in dt_range)
        log_dt = lo + nn.init.uniform_(torch.empty(dt_shape)) * (hi - lo)
        raw = torch.view_as_real(lam.to(torch.complex64))
    else:  # the constrained real part is exactly -1/2
        log_dt = init_log_dt(dt_shape, *dt_range)
        re = torch.full((n,), _unconstrain_real(-0.5, lambda_real), dtype=torch.float64)
        raw = torch.stack([re, lam.imag], -1).float()
    return {"log_dt": log_dt, "Lambda": raw.expand(channels, heads, n, 2).clone(), "B": B, "C": C}


def _parse_lr(lr) -> dict[str, float | None]:
    """``lr``: None (DEFAULT_LR), one number for all, or a dict updating DEFAULT_LR (a None value: global)."""
    if lr is None:
        return dict(DEFAULT_LR)
    if isinstance(lr, Mapping):
        unknown = sorted(set(lr) - set(LR_KEYS))
        if unknown:
            raise ValueError(f"lr keys must be among {list(LR_KEYS)}, got {unknown}")
        out = {**DEFAULT_LR, **lr}
    else:
        out = dict.fromkeys(LR_KEYS, lr)
    for key, value in out.items():
        if value is not None:
            check_finite_number(f"lr[{key!r}]", value, positive=True)
    return out


# ----------------------------------------------------------------------------------------------------
# layout: features last (B, L, H) <-> time last (B, H, L)
# ----------------------------------------------------------------------------------------------------
# elements per batch item from which _SwapLast copies item by item (measured on a 2-core VM: the batched
# copy wins at (1024, 128) with two threads, the blocked one at (2048, 128) and beyond)
_BLOCKED_COPY = 1 << 18


class _SwapLast(torch.autograd.Function):
    """Contiguous transpose of the last two dims, (B, M, N) -> (B, N, M), both ways (its own gradient).

    A contiguous result keeps the matmuls and elementwise ops around it (and their gradients) free of
    strided copies. Matrices larger than a core's cache (``_BLOCKED_COPY`` elements) are copied one batch
    item at a time: torch copies a transposed contiguous 2-D matrix with a cache-blocked kernel, 3x faster
    at (8, 4096, 128) than the batched strided copy even when that one has two threads; smaller ones stay
    in cache, where the batched (multithreaded) copy is as fast or faster.
    """

    @staticmethod
    def forward(ctx, t: Tensor) -> Tensor:
        out = t.new_empty(t.shape[0], t.shape[2], t.shape[1])
        if t.shape[1] * t.shape[2] < _BLOCKED_COPY or torch.compiler.is_compiling():
            return out.copy_(t.transpose(1, 2))
        t = t.contiguous()
        for b in range(t.shape[0]):
            out[b].copy_(t[b].t())
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return _SwapLast.apply(grad)


def swap_last(t: Tensor) -> Tensor:
    """t (B, M, N) -> contiguous (B, N, M), differentiable (same values as t.transpose(1, 2))."""
    return _SwapLast.apply(t)


class _HalfGLU1(torch.autograd.Function):
    """out = z * sigmoid(z W^T + b), z = GELU(y), over the last dim (the ``half_glu1`` gate, no dropout).

    The same forward ops as autograd's; the backward fuses the two gradients of z into one matmul
    (dz = g s + (g z s (1 - s)) W) and skips the intermediate tensors autograd allocates. A backward with
    create_graph recomputes the forward with autograd, so higher derivatives stay exact.
    """

    @staticmethod
    def forward(ctx, y: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        z = F.gelu(y)
        s = F.linear(z, weight, bias).sigmoid_()
        ctx.save_for_backward(y, z, s, weight, bias)
        return z * s

    @staticmethod
    def backward(ctx, grad: Tensor):
        y, z, s, weight, bias = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the recomputed forward
            inputs = (y, weight, bias)
            wrt = [t for t, need in zip(inputs, ctx.needs_input_grad) if need]
            z = F.gelu(y)
            out = z * torch.sigmoid(F.linear(z, weight, bias))
            grads = iter(torch.autograd.grad(out, wrt, grad, create_graph=True))
            return tuple(next(grads) if need else None for need in ctx.needs_input_grad)
        width = y.shape[-1]
        g2, z2 = grad.reshape(-1, width), z.reshape(-1, width)
        ga = torch.ops.aten.sigmoid_backward(g2 * z2, s.reshape(-1, width))
        dz = (g2 * s.reshape(-1, width)).addmm_(ga, weight)
        dy = torch.ops.aten.gelu_backward(dz.view(y.shape), y)
        dw = ga.t() @ z2 if ctx.needs_input_grad[1] else None
        db = ga.sum(0) if bias is not None and ctx.needs_input_grad[2] else None
        return dy, dw, db


# ----------------------------------------------------------------------------------------------------
# the layer
# ----------------------------------------------------------------------------------------------------
class LDNN(SequenceLayer):
    """Multi-head MIMO diagonal SSM (LDNN). x: (batch, length, d_model) -> y: (batch, length, d_model).

    Args:
        d_model: H, divisible by ``heads``.
        d_state: the complex modes of all heads (the reference's ``d_s`` with ``keep_d_state=True``);
            n = d_state / heads per head.
        heads: S, the number of block-diagonal MIMO systems (h = H/S features, n modes each).
        channels: independent copies of the SSM, mixed by Linear(channels H, H).
        bidirectional: add the mirrored kernel (no recurrent form then).
        conj_sym: y = 2 C Re(x) (each mode stands for a conjugate pair) instead of C Re(x).
        dt_min, dt_max: log dt ~ U[log dt_min, log dt_max], one per state (``dt_per_state``) or per head.
        lambda_real, lambda_imag, max_real_lambda: the eigenvalue constraint (see ``constrain_lambda``).
        discretization: "zoh" (the reference's) or "bilinear".
        D: "vector" (per feature), "matrix" (h x h per head) or "none".
        activation: before the mixers (None in every reference config); post_activation: after them.
            Either a GLU kind (half_glu1, half_glu2, full_glu) or a plain activation name.
        dropout: the reference's one dropout (inside the GLUs and before the head mixer).
        init: "paper" | "reference" (see the module docstring); B_init, C_init: "hippo" (B = Re(V^* B0),
            C = Re(C0 V), B0, C0 complex truncated normal) | "trunc_normal" | "normal".
        lr: lr hints for log_dt, Lambda, B, C, D: None (1e-3 for log_dt, Lambda, B; the global lr for C, D,
            as the reference), a number for all, or a dict of some of them; never weight decay.
        zoh_eps: 1/Lambda as conj(Lambda) / (|Lambda|^2 + zoh_eps) in ZOH; DeepLDNN uses 1e-7, 0 is exact.

    Parameters (the reference's names and shapes): Lambda (C, S, n, 2), log_dt (C, S, n) or (C, S, 1),
    B (C, S, n, h), C (C, S, h, n), D (C, S, h) or (C, S, h, h); head_mixer, channel_mixer, out1, out2,
    out1_post, out2_post (Linear layers, present as the options need them).
    State: (batch, S, channels, n, 2), the complex modes as real pairs.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 64,
        heads: int = 1,
        channels: int = 1,
        bidirectional: bool = False,
        conj_sym: bool = True,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_per_state: bool = True,
        lambda_real: str = "clip",
        lambda_imag: str = "same",
        max_real_lambda: float = 1e-4,
        discretization: str = "zoh",
        D: str = "vector",
        activation: str | None = None,
        post_activation: str | None = "half_glu1",
        dropout: float = 0.0,
        init: str = "paper",
        B_init: str = "hippo",
        C_init: str = "trunc_normal",
        lr: float | Mapping | None = None,
        zoh_eps: float = 0.0,
    ):
        super().__init__(d_model)
        self.d_state = check_positive_int("d_state", d_state)
        self.heads = check_positive_int("heads", heads)
        self.channels = check_positive_int("channels", channels)
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        if d_state % heads:
            raise ValueError(f"d_state={d_state} must be divisible by heads={heads}")
        for name, value, choices in [
            ("lambda_real", lambda_real, LAMBDA_REAL),
            ("lambda_imag", lambda_imag, LAMBDA_IMAG),
            ("discretization", discretization, DISCRETIZATIONS),
            ("D", D, D_FORMS),
            ("activation", activation, ACTIVATIONS),
            ("post_activation", post_activation, ACTIVATIONS),
            ("init", init, INITS),
            ("B_init", B_init, MATRIX_INITS),
            ("C_init", C_init, MATRIX_INITS),
        ]:
            check_choice(name, value, choices)
        dt_min, dt_max = check_dt_range(dt_min, dt_max)
        self.max_real_lambda = check_finite_number("max_real_lambda", max_real_lambda, low=0.0)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        self.zoh_eps = check_finite_number("zoh_eps", zoh_eps, low=0.0)
        hints = _parse_lr(lr)
        self.bidirectional, self.conj_sym = bool(bidirectional), bool(conj_sym)
        self.recurrent = not self.bidirectional
        self.dt_per_state = bool(dt_per_state)
        self.lambda_real, self.lambda_imag, self.discretization = lambda_real, lambda_imag, discretization
        self.D_form, self.activation, self.post_activation, self.init = D, activation, post_activation, init
        Cc, S = channels, heads
        h, n = d_model // heads, d_state // heads
        self.h, self.n = h, n

        ssm = ldnn_init(
            init,
            Cc,
            S,
            h,
            n,
            conj_sym=conj_sym,
            B_init=B_init,
            C_init=C_init,
            dt_range=(dt_min, dt_max),
            dt_per_state=dt_per_state,
            lambda_real=lambda_real,
        )
        for name, tensor in ssm.items():
            register_ssm_param(self, name, tensor, lr=hints[name])
        if D == "vector":
            register_ssm_param(self, "D", torch.ones(Cc, S, h), lr=hints["D"])
        elif D == "matrix":  # the reference's D_init "one" fills the matrix; the paper's skip is identity
            eye = torch.ones(h, h) if init == "reference" else torch.eye(h)
            register_ssm_param(self, "D", eye.expand(Cc, S, h, h).clone(), lr=hints["D"])

        H = d_model
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head_mixer = nn.Linear(H, H) if S > 1 else None
        self.channel_mixer = nn.Linear(Cc * H, H) if Cc > 1 else None
        self.out1 = nn.Linear(H, H) if activation == "full_glu" else None
        self.out2 = nn.Linear(H, H) if activation in GATES else None
        self.out1_post = nn.Linear(H, H) if post_activation == "full_glu" else None
        self.out2_post = nn.Linear(H, H) if post_activation in GATES else None
        self._cache = KernelCache()

    # ------------------------------------------------------------------------------------------------
    # eigenvalues, discretisation, kernel. Rows of the per-state tensors are ordered (head, channel, mode),
    # so that B u is one batched matmul over heads with a contiguous output.
    # ------------------------------------------------------------------------------------------------
    def _lambda(self) -> tuple[Tensor, Tensor]:
        return constrain_lambda(self.Lambda, self.lambda_real, self.lambda_imag, self.max_real_lambda)

    def eigenvalues(self) -> Tensor:
        """The continuous-time Lambda after the constraint: complex (channels, heads, n)."""
        re, im = self._lambda()
        return torch.complex(re.detach(), im.detach())

    def _discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(log Abar, Abar, beta), each (R, 1, 2) with R = S C n rows: the per-state diagonal system."""
        re, im = self._lambda()
        A = torch.stack([re, im], -1).transpose(0, 1).reshape(-1, 1, 2)
        dt = torch.exp(self.log_dt).expand(*re.shape).transpose(0, 1).reshape(-1)
        log_abar, abar, beta = discretize_diag(A, dt, self.discretization)
        if self.discretization == "zoh" and self.zoh_eps > 0:
            one = torch.zeros_like(abar)
            one[..., 0] = 1.0
            beta = cmul(abar - one, conj(A)) / (cabs2(A) + self.zoh_eps).unsqueeze(-1)
        return log_abar, abar, beta

    def _params(self) -> list[Tensor]:
        return [self.Lambda, self.log_dt]

    def _kernel(self, length: int) -> Tensor:
        """K (R, L): K_r[l] = Re(beta_r Abar_r^l), one real row per state."""

        def build():
            log_abar, _, beta = self._discrete()
            return vandermonde_kernel(log_abar, beta, length)

        return self._cache.get("kernel", self._params(), (length,), build, training=self.training)

    def _system(self) -> tuple[Tensor, Tensor, Tensor]:
        return self._cache.get("discrete", self._params(), (), self._discrete, training=self.training)

    # ------------------------------------------------------------------------------------------------
    # B in, C and D out, the output path
    # ------------------------------------------------------------------------------------------------
    def _lift(self, u: Tensor) -> Tensor:
        """v = B u_s: u (B, S, h, L) -> (B, R, L)."""
        S, Cc, n, h = self.heads, self.channels, self.n, self.h
        Bm = self.B.transpose(0, 1).reshape(S, Cc * n, h).to(u.dtype)
        return (Bm @ u).reshape(u.shape[0], S * Cc * n, u.shape[-1])

    def _readout(self, x: Tensor, u: Tensor) -> Tensor:
        """y = 2 C x + D u per head and channel: x (B, R, L), u (B, S, h, L) -> (B, L, channels, H)."""
        S, Cc, n, h = self.heads, self.channels, self.n, self.h
        batch, length = x.shape[0], x.shape[-1]
        Cm = self.C.transpose(0, 1).to(x.dtype)  # (S, Cc, h, n)
        y = (2 * Cm if self.conj_sym else Cm) @ x.view(batch, S, Cc, n, length)  # (B, S, Cc, h, L)
        if self.D_form == "vector":
            y = y + self.D.transpose(0, 1).to(u.dtype).unsqueeze(-1) * u.unsqueeze(2)
        elif self.D_form == "matrix":
            y = y + self.D.transpose(0, 1).to(u.dtype) @ u.unsqueeze(2)
        # rows (S, Cc, h) to features last; the (S, Cc) swap is a copy of contiguous h-chunks only if Cc > 1
        y = swap_last(y.view(batch, S * Cc * h, length)).view(batch, length, S, Cc, h)
        return y.transpose(2, 3).reshape(batch, length, Cc, S * h)

    def _activate(self, kind, y: Tensor, out1, out2) -> Tensor:
        if kind not in GATES:
            return PLAIN[kind](y)
        if kind == "half_glu1" and self._fusable(y, out2):
            return _HalfGLU1.apply(y, out2.weight, out2.bias)
        z = self.drop(F.gelu(y))
        if kind == "half_glu1":
            return z * torch.sigmoid(out2(z))
        if kind == "half_glu2":
            return y * torch.sigmoid(out2(z))
        return out1(z) * torch.sigmoid(out2(z))

    def _fusable(self, y: Tensor, linear: nn.Linear) -> bool:
        """The fused gate gives autograd's numbers: no active dropout, autocast or compile, one dtype."""
        return (
            (isinstance(self.drop, nn.Identity) or not self.training)
            and not torch.compiler.is_compiling()
            and not (y.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(y.device.type))
            and y.dtype == linear.weight.dtype
        )

    def _output(self, y: Tensor) -> Tensor:
        """(..., channels, H) -> (..., H): activation, head mixer, channel mixer, post-activation."""
        y = self._activate(self.activation, y, self.out1, self.out2)
        if self.head_mixer is not None:
            y = self.head_mixer(self.drop(y))
        y = y.flatten(-2)
        if self.channel_mixer is not None:
            y = self.channel_mixer(y)
        return self._activate(self.post_activation, y, self.out1_post, self.out2_post)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, L, H) -> u (B, S, h, L)."""
        return swap_last(x).view(x.shape[0], self.heads, self.h, x.shape[1])

    # ------------------------------------------------------------------------------------------------
    # parallel mode
    # ------------------------------------------------------------------------------------------------
    def _forward(self, x: Tensor) -> Tensor:
        u = self._heads(x)
        v = self._lift(u)
        k = self._kernel(x.shape[1])
        states = bidirectional_conv(v, k, k) if self.bidirectional else causal_conv(v, k)
        return self._output(self._readout(states, u))

    # ------------------------------------------------------------------------------------------------
    # recurrent mode: per state the complex x_t = Abar x_{t-1} + beta v_t (diag_ssm with one mode per row;
    # its readout 2 Re(c x) with c = 1/2 is Re(x), which C then mixes)
    # ------------------------------------------------------------------------------------------------
    def state_shape(self) -> tuple[int, int, int, int]:
        return (self.heads, self.channels, self.n, 2)

    def _half(self, like: Tensor) -> Tensor:
        return torch.tensor([0.5, 0.0], dtype=like.dtype, device=like.device)

    def _step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        _, abar, beta = self._system()
        u = self._heads(x_t.unsqueeze(1))  # (B, S, h, 1)
        v = self._lift(u)[..., 0]
        rows = state.reshape(x_t.shape[0], -1, 1, 2)
        re_x, rows = diag_step(abar, beta, self._half(x_t), rows, v)
        y = self._output(self._readout(re_x.unsqueeze(-1), u))[:, 0]
        return y, rows.view(state.shape)

    def _forward_with_state(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        log_abar, abar, beta = self._system()
        u = self._heads(x)
        v = self._lift(u)
        rows = state.reshape(x.shape[0], -1, 1, 2)
        free, rows = diag_chunk(log_abar, abar, beta, self._half(x), rows, v)
        states = causal_conv(v, self._kernel(x.shape[1])) + free
        return self._output(self._readout(states, u)), rows.view(state.shape)


register_layer(
    "ldnn",
    LDNN,
    test_configs={
        "default": dict(d_state=4),
        "heads2-half_glu2": dict(d_state=8, heads=2, post_activation="half_glu2", activation="gelu"),
        "heads4-matrixD-full_glu": dict(d_state=8, heads=4, D="matrix", post_activation="full_glu"),
        "no-conj-noD-dt-per-head": dict(
            d_state=4, conj_sym=False, D="none", post_activation="gelu", dt_per_state=False
        ),
        "reference-init-channels2": dict(
            d_state=4, heads=2, channels=2, init="reference", C_init="hippo", lambda_real="softplus"
        ),
        "bilinear-gates": dict(
            d_state=6, heads=2, discretization="bilinear", activation="half_glu1", post_activation=None
        ),
        "bidirectional": dict(d_state=4, heads=2, bidirectional=True),
    },
    invalid_configs=[
        dict(d_state=3, heads=2),
        dict(heads=3),
        dict(channels=0),
        dict(dt_min=float("nan")),
        dict(dt_min=0.2, dt_max=0.1),
        dict(lambda_real="relu"),
        dict(lambda_imag="cos"),
        dict(D="scalar"),
        dict(post_activation="glu"),
        dict(init="s5"),
        dict(B_init="eye"),
        dict(lr={"A": 1e-3}),
        dict(max_real_lambda=-1.0),
        dict(dropout=1.5),
        dict(discretization="euler"),
    ],
    bench_kwargs=dict(d_state=128, heads=32),
)
