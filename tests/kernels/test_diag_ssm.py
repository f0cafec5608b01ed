"""The diagonal SSM recurrence: a closed-form chunk equals the steps, and the steps equal the definition."""

import torch

from lindy.kernels.complex_pairs import cexp, cmul, to_complex
from lindy.kernels.diag_ssm import diag_chunk, diag_powers, diag_step
from lindy.kernels.fft_conv import causal_conv
from lindy.kernels.vandermonde import vandermonde_kernel

B, H, N, L = 3, 4, 5, 9


def _system(seed=0):
    g = torch.Generator().manual_seed(seed)
    log_abar = torch.stack([-torch.rand(H, N, generator=g) * 0.3, torch.randn(H, N, generator=g)], -1)
    bbar = torch.randn(H, N, 2, generator=g, dtype=torch.float64)
    c = torch.randn(H, N, 2, generator=g, dtype=torch.float64)
    return log_abar.double(), cexp(log_abar.double()), bbar, c


def test_step_is_the_complex_recurrence():
    log_abar, abar, bbar, c = _system()
    state = torch.randn(B, H, N, 2, dtype=torch.float64)
    u = torch.randn(B, H, dtype=torch.float64)
    y, new = diag_step(abar, bbar, c, state, u)
    want = to_complex(abar) * to_complex(state) + to_complex(bbar) * u[:, :, None]
    torch.testing.assert_close(to_complex(new), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(y, 2 * (to_complex(c) * want).sum(-1).real, rtol=1e-12, atol=1e-12)


def test_chunk_plus_kernel_convolution_equals_the_steps():
    log_abar, abar, bbar, c = _system(1)
    state0 = torch.randn(B, H, N, 2, dtype=torch.float64)
    u = torch.randn(B, H, L, dtype=torch.float64)
    state, ys = state0, []
    for t in range(L):
        y_t, state = diag_step(abar, bbar, c, state, u[..., t])
        ys.append(y_t)
    k = vandermonde_kernel(log_abar, 2 * cmul(c, bbar), L)
    free, new_state = diag_chunk(log_abar, abar, bbar, c, state0, u)
    torch.testing.assert_close(causal_conv(u, k) + free, torch.stack(ys, -1), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(new_state, state, rtol=1e-10, atol=1e-10)


def test_powers_are_exact_powers():
    log_abar, abar, _, _ = _system(2)
    powers = to_complex(diag_powers(log_abar, 6))
    z = to_complex(abar)
    for l in range(6):
        torch.testing.assert_close(powers[..., l], z**l, rtol=1e-12, atol=1e-12)
