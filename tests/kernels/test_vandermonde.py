import math

import numpy as np
import pytest
import torch

from lindy.kernels import discretize_diag, vandermonde_kernel, vandermonde_kernel_naive


def random_system(H, N, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.stack([-torch.rand(H, N, generator=g) - 0.05, 30 * torch.randn(H, N, generator=g)], -1)
    dt = torch.exp(torch.rand(H, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    c = torch.randn(H, N, 2, generator=g)
    return (A * dt[:, None, None]).to(dtype), c.to(dtype)


@pytest.mark.parametrize("L", [1, 2, 7, 64, 1000, 4097])
@pytest.mark.parametrize("H,N", [(1, 1), (3, 8), (5, 32)])
def test_fast_equals_naive_float64(L, H, N):
    log_z, c = random_system(H, N)
    fast = vandermonde_kernel(log_z, c, L)
    assert fast.shape == (H, L)
    torch.testing.assert_close(fast, vandermonde_kernel_naive(log_z, c, L), rtol=1e-10, atol=1e-10)


def test_float32_accuracy_no_worse_than_naive():
    log_z, c = random_system(16, 32)
    L = 16384
    truth = vandermonde_kernel_naive(log_z, c, L)
    err_fast = (vandermonde_kernel(log_z.float(), c.float(), L).double() - truth).abs().max()
    err_naive = (vandermonde_kernel_naive(log_z.float(), c.float(), L).double() - truth).abs().max()
    scale = truth.abs().max()
    assert err_fast <= 2 * err_naive + 1e-6 * scale, (err_fast, err_naive)
    assert err_fast / scale < 1e-3


def test_broadcast_batch_of_coefficients():
    log_z, c = random_system(3, 4)
    cb = torch.randn(2, 3, 4, 2, dtype=torch.float64)
    out = vandermonde_kernel(log_z, cb, 11)
    assert out.shape == (2, 3, 11)
    torch.testing.assert_close(out[1], vandermonde_kernel_naive(log_z, cb[1], 11))


def test_gradcheck():
    log_z, c = random_system(2, 3)
    log_z.requires_grad_(True)
    c.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: vandermonde_kernel(a, b, 10), (log_z, c))


def test_s4d_lin_reference_value():
    # S4D-Lin H=1, N=4 (A_n = -1/2 + i pi n, n = 0, 1), dt = 0.1, C = 1, B = 1, ZOH
    A = torch.tensor([[[-0.5, 0.0], [-0.5, math.pi]]], dtype=torch.float64)
    log_abar, _, factor = discretize_diag(A, torch.tensor([0.1], dtype=torch.float64), "zoh")
    k = vandermonde_kernel(log_abar, 2 * factor, 5)  # c = 2 C Bbar, C = B = 1
    expected = torch.tensor([0.387011, 0.350341, 0.300985, 0.244020, 0.184809], dtype=torch.float64)
    torch.testing.assert_close(k[0], expected, rtol=0, atol=5e-7)


def test_bad_arguments():
    log_z, c = random_system(1, 3)
    with pytest.raises(ValueError, match="real pairs"):
        vandermonde_kernel(log_z[..., 0], c, 4)
    for bad in (0, -1, True, 4.0):
        for kernel in (vandermonde_kernel, vandermonde_kernel_naive):
            with pytest.raises(ValueError, match="L must be a positive int"):
                kernel(log_z, c, bad)
    # a NumPy integer is a length (lindy._checks), and gives the same kernel
    torch.testing.assert_close(vandermonde_kernel(log_z, c, np.int64(7)), vandermonde_kernel(log_z, c, 7))
