"""S4D: the diagonal state-space layer (Gu, Gupta, Goel, Re 2022, "On the Parameterization and
Initialization of Diagonal State Space Models").

Each of the H features runs its own complex diagonal SSM with N/2 modes (conjugate pairs are implicit):

    x'(t) = A x(t) + B u(t),   y(t) = 2 Re(C x(t)) + D u(t),     A = -exp(log_A_real) + i A_imag

discretised with step dt = exp(log_dt) by zero-order hold (Abar = exp(dt A), Bbar = (Abar - 1)/A B) or
bilinear (Abar = (1 + dt A/2)/(1 - dt A/2), Bbar = dt B/(1 - dt A/2)). Parallel mode: the kernel
K[l] = 2 Re(sum_n C_n Bbar_n Abar_n^l), l < L (a Vandermonde product), then y = K * u by causal FFT
convolution (two kernels, causal and anti-causal, when bidirectional). Recurrent mode: the exact
recurrence x_t = Abar x_{t-1} + Bbar u_t, y_t = 2 Re(C x_t) + D u_t.
The layer output is Linear(GLU) of dropout(GELU(y)), as in the state-spaces/s4 standalone S4D.

Complex parameters are stored as real pairs (last dim 2); A, B and dt carry optimiser hints
(lr = min(lr, 1e-3) by default, no weight decay).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from lindy.kernels.complex_pairs import cmul
from lindy.kernels.diag_ssm import diag_chunk, diag_step
from lindy.kernels.discretize import discretize_diag
from lindy.kernels.fft_conv import bidirectional_conv, causal_conv
from lindy.kernels.hippo import dplr
from lindy.kernels.vandermonde import vandermonde_kernel
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

__all__ = ["S4D", "s4d_init"]

INITS = ("lin", "inv", "legs")
DISCRETIZATIONS = ("zoh", "bilinear")


def s4d_init(init: str, d_state: int) -> tuple[Tensor, Tensor, Tensor]:
    """Initial (A_real, A_imag, B_pairs) for ``d_state`` = N, i.e. N/2 complex modes, in float64.

    - ``lin``:  A_n = -1/2 + i pi n                              (S4D-Lin)
    - ``inv``:  A_n = -1/2 + i (N/pi) (N/(2n+1) - 1)             (S4D-Inv)
    - ``legs``: the eigenvalues of the normal part of HiPPO-LegS (-1/2 + i w_n), B projected onto its
      eigenvectors (S4D-LegS, the diagonal restriction of S4's DPLR form).
    B is 1 for ``lin`` and ``inv``. Shapes: (N/2,), (N/2,), (N/2, 2).
    """
    check_choice("init", init, INITS)
    n_modes = d_state // 2
    n = torch.arange(n_modes, dtype=torch.float64)
    real = torch.full((n_modes,), -0.5, dtype=torch.float64)
    b = torch.stack([torch.ones(n_modes, dtype=torch.float64), torch.zeros(n_modes, dtype=torch.float64)], -1)
    if init == "lin":
        imag = math.pi * n
    elif init == "inv":
        imag = d_state / math.pi * (d_state / (2 * n + 1) - 1)
    else:
        decomposition = dplr("legs", d_state)
        real, imag = decomposition.w[:, 0].clone(), decomposition.w[:, 1].clone()
        b = decomposition.B.clone()
    return real, imag, b


class S4D(SequenceLayer):
    """Diagonal SSM layer (S4D). x: (batch, length, d_model) -> y: (batch, length, d_model).

    Args:
        d_model: H, the number of features (each its own SSM).
        d_state: N, the state size; N/2 complex modes are stored (must be even).
        init: "lin" | "inv" | "legs" initialisation of A (and B).
        disc: "zoh" | "bilinear" discretisation.
        dt_min, dt_max: log dt_h ~ U[log dt_min, log dt_max] per feature.
        lr: learning rate for A, B, dt (None: the optimiser's global lr); no weight decay on them.
        dropout: dropout after the GELU.
        bidirectional: add an anti-causal kernel (separate C, shared A, B, dt); then no recurrent form.
        learn_B: whether B is trained (the standalone S4D of state-spaces/s4 fixes B = 1).

    The skip D u is folded into the kernel's first tap (K[0] += D), the same maths in one convolution.
    Parameters: log_dt (H,), log_A_real (H, N/2), A_imag (H, N/2), B (H, N/2, 2), C (H, N/2, 2)
    [+ C_reverse], D (H,), output_linear (Linear H -> 2H then GLU).
    State: (batch, H, N/2, 2), the complex modes as real pairs.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 64,
        init: str = "lin",
        disc: str = "zoh",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        lr: float | None = 1e-3,
        dropout: float = 0.0,
        bidirectional: bool = False,
        learn_B: bool = True,
    ):
        super().__init__(d_model)
        check_positive_int("d_state", d_state)
        if d_state % 2:
            raise ValueError(f"d_state must be even (N/2 complex conjugate modes), got {d_state}")
        check_choice("init", init, INITS)
        check_choice("disc", disc, DISCRETIZATIONS)
        dt_min, dt_max = check_dt_range(dt_min, dt_max)
        check_finite_number("dropout", dropout, low=0.0, high=1.0)
        if lr is not None:
            check_finite_number("lr", lr, positive=True)
        self.d_state, self.init, self.disc = d_state, init, disc
        self.bidirectional = bool(bidirectional)
        self.recurrent = not self.bidirectional
        H, n_modes = d_model, d_state // 2

        log_dt = init_log_dt(H, dt_min, dt_max)
        real, imag, b = s4d_init(init, d_state)
        register_ssm_param(self, "log_dt", log_dt, lr=lr)
        register_ssm_param(self, "log_A_real", torch.log(-real).float().repeat(H, 1), lr=lr)
        register_ssm_param(self, "A_imag", imag.float().repeat(H, 1), lr=lr)
        register_ssm_param(self, "B", b.float().repeat(H, 1, 1), lr=lr, trainable=learn_B)
        # C ~ complex standard normal (real and imaginary parts of variance 1/2), as in S4D
        self.C = nn.Parameter(torch.randn(H, n_modes, 2) * math.sqrt(0.5))
        if self.bidirectional:
            self.C_reverse = nn.Parameter(torch.randn(H, n_modes, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(H))
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.output_linear = nn.Linear(H, 2 * H)
        self.glu = nn.GLU(dim=-1)
        self._cache = KernelCache()

    # ------------------------------------------------------------------------------------------------
    # discretisation and kernel
    # ------------------------------------------------------------------------------------------------
    def _discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(log Abar, Abar, Bbar) as real pairs of shape (H, N/2, 2), in the parameters' dtype."""
        A = torch.stack([-torch.exp(self.log_A_real), self.A_imag], -1)  # (H, N/2, 2)
        log_abar, abar, factor = discretize_diag(A, torch.exp(self.log_dt), self.disc)
        return log_abar, abar, cmul(factor, self.B)

    def _kernels(self, length: int) -> tuple[Tensor, Tensor | None]:
        """Causal kernel K (H, L) with D at lag 0 and, when bidirectional, the anti-causal one."""
        params = [self.log_dt, self.log_A_real, self.A_imag, self.B, self.C, self.D]
        if self.bidirectional:
            params.append(self.C_reverse)

        def build():
            log_abar, _, bbar = self._discrete()
            k = fold_skip(vandermonde_kernel(log_abar, 2 * cmul(self.C, bbar), length), self.D)
            k_rev = None
            if self.bidirectional:
                k_rev = vandermonde_kernel(log_abar, 2 * cmul(self.C_reverse, bbar), length)
            return k, k_rev

        return self._cache.get("kernel", params, (length,), build, training=self.training)

    # ------------------------------------------------------------------------------------------------
    # parallel mode
    # ------------------------------------------------------------------------------------------------
    def _output(self, y: Tensor) -> Tensor:
        """Activation, dropout and the GLU output projection of the SSM output y: (B, L, H)."""
        return self.glu(self.output_linear(self.dropout(self.activation(y))))

    def _forward(self, x: Tensor) -> Tensor:
        k, k_rev = self._kernels(x.shape[1])
        u = rearrange(x, "b l h -> b h l")
        y = causal_conv(u, k) if k_rev is None else bidirectional_conv(u, k, k_rev)
        # contiguous before GELU: its backward with a grad and an input of different strides is ~20x slower
        return self._output(rearrange(y, "b h l -> b l h").contiguous())

    # ------------------------------------------------------------------------------------------------
    # recurrent mode
    # ------------------------------------------------------------------------------------------------
    def state_shape(self) -> tuple[int, int, int]:
        return (self.d_model, self.d_state // 2, 2)

    def _step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        _, abar, bbar = self._discrete()
        y, state = diag_step(abar, bbar, self.C, state, x_t)
        return self._output(y + self.D * x_t), state

    def _forward_with_state(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        log_abar, abar, bbar = self._discrete()
        k, _ = self._kernels(x.shape[1])
        u = rearrange(x, "b l h -> b h l")
        free, new_state = diag_chunk(log_abar, abar, bbar, self.C, state, u)
        y = causal_conv(u, k) + free
        return self._output(rearrange(y, "b h l -> b l h")), new_state


register_layer(
    "s4d",
    S4D,
    test_configs={
        "lin-zoh": dict(d_state=4),
        "inv-bilinear": dict(d_state=6, init="inv", disc="bilinear"),
        "legs": dict(d_state=4, init="legs"),
        "bidirectional": dict(d_state=4, bidirectional=True),
    },
    invalid_configs=[
        dict(d_state=3),
        dict(dt_min=float("nan")),
        dict(dt_min=0.2, dt_max=0.1),
        dict(init="legt"),
        dict(disc="euler"),
        dict(dropout=1.5),
    ],
    bench_kwargs=dict(d_state=64),
)
