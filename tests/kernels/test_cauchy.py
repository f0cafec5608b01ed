"""Chunked Cauchy products: equal to the materialised matrix, gradients by complex gradcheck."""

import math

import pytest
import torch

from lindy.kernels.cauchy import cauchy_matmul, cauchy_matmul_naive
from lindy.kernels.nplr_kernel import frequencies


def problem(H=3, N=5, Q=4, L=9, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)

    def c(*shape):
        return torch.complex(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)).to(dtype)

    mu = torch.complex(-torch.rand(H, N, generator=g) - 0.1, torch.randn(H, N, generator=g)).to(dtype)
    a, b = frequencies(L, 0.5, dtype)
    return mu, c(H, N, Q), a, b


@pytest.mark.parametrize("chunk", [1, 2, 256])
def test_equals_the_materialised_matrix(chunk):
    mu, W, a, b = problem()
    torch.testing.assert_close(cauchy_matmul(mu, W, a, b, chunk), cauchy_matmul_naive(mu, W, a, b))


def test_gradcheck_complex_float64():
    mu, W, a, b = problem(H=2, N=3, Q=2, L=6)
    mu.requires_grad_(True)
    W.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m, w: cauchy_matmul(m, w, a, b, 2), (mu, W))


def test_frequencies_are_the_fft_points():
    s, beta = frequencies(8, 0.5, torch.complex128)
    z = torch.exp(-2j * math.pi * torch.arange(5, dtype=torch.float64) / 8)
    torch.testing.assert_close(s, 1 - z)
    torch.testing.assert_close(beta, (1 + z) / 2)


def test_bad_arguments():
    mu, W, a, b = problem()
    with pytest.raises(TypeError, match="complex"):
        cauchy_matmul(mu.real, W, a, b)
    with pytest.raises(ValueError, match=r"mu \(H, N\) and W \(H, N, Q\)"):
        cauchy_matmul(mu, W[:, :2], a, b)
