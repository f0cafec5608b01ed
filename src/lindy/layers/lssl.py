"""LSSL: the Linear State-Space Layer (Gu, Johnson, Goel, Saab, Dao, Rudra, Re 2021, "Combining Recurrent,
Convolutional, and Continuous-time Models with Linear State-Space Layers").

Each of the H features is a SISO system with N states and M output channels,

    x'(t) = A x(t) + B u(t),    y(t) = C x(t) + D u(t),      C: (H, M, N),  D: (H, M),

with (A, B) from a HiPPO measure, discretised with step dt_h / rate by the generalised bilinear transform
(alpha = 1/2 by default; 0 and 1 are the Euler rules) or zero-order hold. Parallel mode: the kernel
K[h, m, l] = C_hm Abar_h^l Bbar_h (l < L), y = K * u by causal FFT convolution, + D u. Recurrent mode:
x_k = Abar x_{k-1} + Bbar u_k, y_k = C x_k + D u_k (O(N^2) per step, exact). Output:
Linear(H M -> H) of dropout(GELU(y)) with the (H, M) channels flattened.

(A, B) and their training (``learn``): 0 fixed; 1 one trainable pair shared by all features; 2 one per
feature. A and B get lr 1e-4 and dt lr 1e-3 (caps, see ``register_ssm_param``), no weight decay.

Parameterisation. For legs, legt and lagt (N even, GBT), A is kept in its normal-plus-low-rank form
A = 2 Re(V diag(w) V^*) - P P^T with V fixed and w, P, B trained, so the HiPPO structure holds for every
learned value; ``measure="random"`` / ``"identity"``, zero-order hold and odd N train a dense A.

Kernel (``kernel``), all exact for every learned value:
- "blocked" (default, any A): two levels of powers, K[m, jT + i] = (C_m Abar^(jT)) (Abar^i Bbar) with
  T ~ sqrt(L) (``kernels/krylov.py``): real matmuls only, O(N^3 log L + M N L) time per feature, never an
  N x L tensor per output. Fastest on CPU for N <= 256 (benchmarks/).
- "cauchy" (structured A only): S4's algorithm, the Woodbury identity and chunked Cauchy products at the
  FFT frequencies (``kernels/nplr_kernel.py``), O(N L) complex work per feature, plus log2(L) squarings
  for the tail factor C (I - Abar^L).
- "krylov": the reference LSSL's dense Krylov doubling, O(N^2 L) time and O(H N L) memory.

Continuous time: ``rate`` (constructor argument, or set ``layer.rate`` later) divides every dt, so a layer
trained on one sampling rate runs on a signal sampled ``rate`` times more densely.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from lindy.kernels.discretize import gbt_dense, zoh_dense
from lindy.kernels.fft_conv import causal_conv
from lindy.kernels.hippo import MEASURES as HIPPO_MEASURES
from lindy.kernels.hippo import normal_pairs, transition
from lindy.kernels.krylov import blocked_krylov_kernel, krylov, krylov_kernel
from lindy.kernels.nplr_kernel import nplr_dense, nplr_gbt_kernel
from lindy.layers.base import (
    KernelCache,
    SequenceLayer,
    check_choice,
    check_dt_range,
    check_finite_number,
    check_positive_int,
    fold_skip,
    init_log_dt,
    register_layer,
    register_ssm_param,
)

__all__ = ["LSSL"]

# the HiPPO measures that have a normal-plus-low-rank form LSSL keeps structured, and two dense inits
STRUCTURED = tuple(m for m in HIPPO_MEASURES if m != "legt_unhalved")
MEASURES = (*STRUCTURED, "random", "identity")
DISCRETIZATIONS = ("gbt", "zoh")
KERNELS = ("blocked", "cauchy", "krylov")


def _dense_init(measure: str, N: int) -> tuple[Tensor, Tensor]:
    """(A, B) in float64 for a dense parameterisation."""
    if measure == "random":
        # eigenvalues of G / sqrt(N) fill the unit disc, so A = G / sqrt(N) - I is (just) stable
        return torch.randn(N, N, dtype=torch.float64) / math.sqrt(N) - torch.eye(N, dtype=torch.float64), (
            torch.randn(N, dtype=torch.float64)
        )
    if measure == "identity":
        return -torch.eye(N, dtype=torch.float64), torch.ones(N, dtype=torch.float64)
    return transition(measure, N)


class LSSL(SequenceLayer):
    """Linear State-Space Layer. x: (batch, length, d_model) -> y: (batch, length, d_model).

    Args:
        d_model: H, the number of features (each its own SISO system).
        d_state: N, the state size.
        channels: M, output channels per feature (flattened and mixed by the output Linear).
        measure: "legs" | "legt" | "lagt" (HiPPO; structured kernel) | "random" | "identity" (dense).
        learn: 0 (A, B fixed), 1 (one trainable pair for all features), 2 (one per feature).
        learn_dt: whether dt is trained (default: learn > 0, as the reference config ties them).
        disc: "gbt" (with ``alpha``) or "zoh". alpha: 1/2 bilinear, 0 forward Euler, 1 backward Euler.
        dt_min, dt_max: log dt_h ~ U[log dt_min, log dt_max] per feature.
        lr, dt_lr: learning-rate caps for (A, B) and for dt (no weight decay on any of them).
        dropout: after the GELU. rate: divides dt (sampling-rate change at evaluation).
        kernel: "blocked" | "cauchy" | "krylov", how the convolution kernel is computed (see above).

    Parameters (structured): w (G, N/2, 2) eigenvalues of the normal part as real pairs, P (G, N, r),
    B (G, N), with G = 1 (learn 0, 1) or H (learn 2); dense: A (G, N, N), B (G, N). Then log_dt (H,),
    C (H, M, N), D (H, M), output_linear (H M -> H). State: (batch, H, N).
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 256,
        channels: int = 1,
        measure: str = "legs",
        learn: int = 1,
        learn_dt: bool | None = None,
        disc: str = "gbt",
        alpha: float = 0.5,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-4,
        dt_lr: float | None = 1e-3,
        dropout: float = 0.0,
        rate: float = 1.0,
        kernel: str = "blocked",
    ):
        super().__init__(d_model)
        N = check_positive_int("d_state", d_state)
        M = check_positive_int("channels", channels)
        check_choice("measure", measure, MEASURES)
        check_choice("learn", learn, (0, 1, 2))
        check_choice("disc", disc, DISCRETIZATIONS)
        check_choice("kernel", kernel, KERNELS)
        self.alpha = check_finite_number("alpha", alpha, low=0.0, high=1.0)
        dt_min, dt_max = check_dt_range(dt_min, dt_max)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        for name, value in (("lr", lr), ("dt_lr", dt_lr)):
            if value is not None:
                check_finite_number(name, value, positive=True)
        learn_dt = learn > 0 if learn_dt is None else learn_dt
        if not isinstance(learn_dt, bool):
            raise ValueError(f"learn_dt must be a bool or None, got {learn_dt!r}")
        self.d_state, self.channels, self.measure, self.learn, self.disc = N, M, measure, learn, disc
        self.rate = rate
        H = d_model
        G = H if learn == 2 else 1
        trainable = learn > 0
        self.structured = measure in STRUCTURED and disc == "gbt" and N % 2 == 0
        if kernel == "cauchy" and not self.structured:
            raise ValueError(
                "kernel='cauchy' needs the structured form (measure legs|legt|lagt, disc='gbt', "
                f"even d_state), got measure={measure!r}, disc={disc!r}, d_state={N}; use kernel='blocked'"
            )
        self.kernel_method = kernel
        if self.structured:
            w, V, P, B = normal_pairs(measure, N)
            register_ssm_param(
                self, "w", torch.view_as_real(w).float().repeat(G, 1, 1), lr=lr, trainable=trainable
            )
            register_ssm_param(self, "P", P.float().repeat(G, 1, 1), lr=lr, trainable=trainable)
        else:
            A, B = _dense_init(measure, N)
            register_ssm_param(self, "A", A.float().repeat(G, 1, 1), lr=lr, trainable=trainable)
        register_ssm_param(self, "B", B.float().repeat(G, 1), lr=lr, trainable=trainable)
        log_dt = init_log_dt(H, dt_min, dt_max)
        register_ssm_param(self, "log_dt", log_dt, lr=dt_lr, trainable=learn_dt)
        self.C = nn.Parameter(torch.randn(H, M, N))
        self.D = nn.Parameter(torch.randn(H, M))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output_linear = nn.Linear(H * M, H)
        self._cache = KernelCache()
        self._basis: tuple | None = None

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = check_finite_number("rate", value, positive=True)

    # ------------------------------------------------------------------------------------------------
    # continuous system, discretisation, kernel
    # ------------------------------------------------------------------------------------------------
    def _ssm_params(self) -> list[Tensor]:
        names = ("w", "P", "B", "log_dt", "C", "D") if self.structured else ("A", "B", "log_dt", "C", "D")
        return [getattr(self, n) for n in names]

    def _cached(self, name: str, length: int, build):
        """build() cached in eval mode without grad, keyed by the parameters' versions, length and rate."""
        return self._cache.get(name, self._ssm_params(), (length, self.rate), build, training=self.training)

    def _complex(self, pairs: Tensor) -> Tensor:
        return torch.complex(pairs[..., 0], pairs[..., 1])

    def eigenvectors(self) -> Tensor:
        """The fixed orthonormal V (N, N/2) of the normal part, complex, in the parameters' precision.

        Not a buffer: a float32 copy cast to float64 is orthonormal only to 1e-7, which would make the
        structured kernel and the dense recurrence differ; V is rebuilt in float64 and cast instead.
        """
        dtype = torch.complex128 if self.B.dtype == torch.float64 else torch.complex64
        key = (dtype, self.B.device)
        if self._basis is None or self._basis[0] != key:
            V = normal_pairs(self.measure, self.d_state)[1]
            self._basis = (key, V.to(device=self.B.device, dtype=dtype))
        return self._basis[1]

    def continuous(self) -> tuple[Tensor, Tensor]:
        """The dense continuous (A (G, N, N), B (G, N)) in the parameters' dtype."""
        if self.structured:
            return nplr_dense(self._complex(self.w), self.eigenvectors(), self.P), self.B
        return self.A, self.B

    def dt(self) -> Tensor:
        """The step of each feature, dt_h = exp(log_dt_h) / rate: (H,)."""
        return torch.exp(self.log_dt) / self.rate

    def discrete(self) -> tuple[Tensor, Tensor]:
        """(Abar (H, N, N), Bbar (H, N)) of the current parameters and rate."""
        A, B = self.continuous()
        if self.disc == "zoh":
            return zoh_dense(A, B, self.dt())
        return gbt_dense(A, B, self.dt(), self.alpha)

    def kernel(self, length: int) -> Tensor:
        """K[h, m, l] = C_hm Abar_h^l Bbar_h for l < length (the D skip not included): (H, M, L)."""
        check_positive_int("length", length)
        Abar, Bbar = self.discrete()
        if self.kernel_method == "blocked":
            return blocked_krylov_kernel(Abar, Bbar, self.C, length)
        if self.kernel_method == "krylov":
            return krylov_kernel(Abar, Bbar, self.C, length)
        C_tail = self.C - self.C @ torch.linalg.matrix_power(Abar, length)
        return nplr_gbt_kernel(
            self._complex(self.w),
            self.eigenvectors(),
            self.P,
            self.B,
            C_tail,
            self.dt(),
            length,
            self.alpha,
        )

    def _kernel_with_skip(self, length: int) -> Tensor:
        return self._cached("kernel", length, lambda: fold_skip(self.kernel(length), self.D))

    # ------------------------------------------------------------------------------------------------
    # modes
    # ------------------------------------------------------------------------------------------------
    def _output(self, y: Tensor) -> Tensor:
        """GELU, dropout and Linear(H M -> H) of y: (..., H, M) -> (..., H)."""
        return self.output_linear(self.dropout(self.activation(y)).flatten(-2))

    def _forward(self, x: Tensor) -> Tensor:
        k = self._kernel_with_skip(x.shape[1])  # (H, M, L)
        u = rearrange(x, "b l h -> b h 1 l")
        # one explicit transpose copy: GELU's backward with a grad and an input of different strides
        # takes a slow path (~20x its contiguous time at B=8, H=128, L=4096)
        y = rearrange(causal_conv(u, k), "b h m l -> b l (h m)").contiguous()
        return self.output_linear(self.dropout(self.activation(y)))

    def state_shape(self) -> tuple[int, int]:
        return (self.d_model, self.d_state)

    def _step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        Abar, Bbar = self._cached("discrete", 0, self.discrete)
        state = torch.einsum("hnk,bhk->bhn", Abar, state) + Bbar * x_t.unsqueeze(-1)
        y = torch.einsum("hmn,bhn->bhm", self.C, state) + self.D * x_t.unsqueeze(-1)
        return self._output(y), state

    def _forward_with_state(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        # Streaming chunks are short, so the dense Krylov matrices (H, N, L) are affordable here.
        length = x.shape[1]
        Abar, Bbar = self.discrete()
        u = rearrange(x, "b l h -> b h l")
        driven = krylov(Abar, Bbar, length)  # Abar^l Bbar: (H, N, L)
        k = self.C @ driven + nn.functional.pad(self.D.unsqueeze(-1), (0, length - 1))  # (H, M, L)
        # free response of x0: C Abar^(l+1) x0, with the rows C Abar^(l+1) by Krylov on Abar^T
        rows = krylov(Abar.transpose(-1, -2).unsqueeze(1), (self.C @ Abar), length)  # (H, M, N, L)
        y = causal_conv(u.unsqueeze(2), k) + torch.einsum("hmnl,bhn->bhml", rows, state)
        new_state = torch.einsum("hnk,bhk->bhn", torch.linalg.matrix_power(Abar, length), state)
        new_state = new_state + torch.einsum("hnl,bhl->bhn", driven, u.flip(-1))
        return self._output(rearrange(y, "b h m l -> b l h m")), new_state


register_layer(
    "lssl",
    LSSL,
    test_configs={
        "legs-learn0": dict(d_state=4, learn=0),
        "legs-learn1-M2": dict(d_state=4, learn=1, channels=2),
        "legs-learn2": dict(d_state=6, learn=2),
        "legs-cauchy": dict(d_state=4, channels=2, kernel="cauchy"),
        "legt-krylov": dict(d_state=4, measure="legt", kernel="krylov"),
        "legt": dict(d_state=4, measure="legt"),
        "lagt-euler": dict(d_state=4, measure="lagt", alpha=1.0),
        "legs-zoh": dict(d_state=4, disc="zoh"),
        "random-learn2": dict(d_state=3, measure="random", learn=2),
        "identity": dict(d_state=2, measure="identity", learn=0),
    },
    invalid_configs=[
        dict(d_state=0),
        dict(channels=0),
        dict(measure="legx"),
        dict(learn=3),
        dict(alpha=1.5),
        dict(disc="foh"),
        dict(dt_min=0.2, dt_max=0.1),
        dict(rate=0.0),
        dict(kernel="fft"),
        dict(measure="random", kernel="cauchy"),
        dict(dropout=-0.1),
    ],
    bench_kwargs=dict(d_state=64, learn=1),
)
