import pytest
import torch

from lindy.kernels import bidirectional_conv, causal_conv, kernel_spectrum


def direct_causal(u, k):
    L = u.shape[-1]
    y = torch.zeros_like(u)
    for t in range(L):
        for s in range(min(t + 1, k.shape[-1])):
            y[..., t] += k[..., s] * u[..., t - s]
    return y


@pytest.mark.parametrize("L", [1, 2, 7, 64, 257])
def test_causal_conv_equals_direct_sum(L):
    torch.manual_seed(L)
    u = torch.randn(2, 3, L, dtype=torch.float64)
    k = torch.randn(3, L, dtype=torch.float64)
    torch.testing.assert_close(causal_conv(u, k), direct_causal(u, k))


def test_causal_conv_long_against_matrix_form():
    L = 1000
    u = torch.randn(1, 1, L, dtype=torch.float64)
    k = torch.randn(1, L, dtype=torch.float64)
    toeplitz = torch.zeros(L, L, dtype=torch.float64)
    idx = torch.arange(L)
    lag = idx[:, None] - idx[None, :]
    toeplitz[lag >= 0] = k[0][lag[lag >= 0]]
    torch.testing.assert_close(causal_conv(u, k)[0, 0], toeplitz @ u[0, 0])


def test_shorter_kernel_and_spectrum_path():
    u = torch.randn(2, 4, 50, dtype=torch.float64)
    k = torch.randn(4, 9, dtype=torch.float64)
    y = causal_conv(u, k)
    torch.testing.assert_close(y, direct_causal(u, k))
    torch.testing.assert_close(causal_conv(u, k_f=kernel_spectrum(k, 50)), y)
    with pytest.raises(ValueError, match="exactly one"):
        causal_conv(u)
    with pytest.raises(ValueError, match="kernel length"):
        kernel_spectrum(torch.randn(4, 51), 50)


def test_bidirectional_worked_example():
    # k0 = k1 = [1, 2, 3, 4], u = [1, 10, 100, 1000]: each digit of y is one kernel tap
    k = torch.tensor([[1.0, 2, 3, 4]], dtype=torch.float64)
    u = torch.tensor([[[1.0, 10, 100, 1000]]], dtype=torch.float64)
    y = bidirectional_conv(u, k, k)
    torch.testing.assert_close(y[0, 0], torch.tensor([3211.0, 2112, 1123, 1234], dtype=torch.float64))


def test_bidirectional_with_zero_causal_kernel_is_flipped_causal():
    u = torch.randn(2, 3, 20, dtype=torch.float64)
    k1 = torch.randn(3, 20, dtype=torch.float64)
    y = bidirectional_conv(u, torch.zeros_like(k1), k1)
    # anti-causal part: y[t] = sum_{s>t} k1[s-t-1] u[s] = causal conv of the flipped, one-step-delayed input
    shifted = torch.nn.functional.pad(u.flip(-1), (1, 0))[..., :-1]
    torch.testing.assert_close(y, causal_conv(shifted, k1).flip(-1))


def test_dtypes_and_autocast():
    u = torch.randn(2, 3, 33)
    k = torch.randn(3, 33)
    assert causal_conv(u, k).dtype == torch.float32
    assert causal_conv(u.double(), k.double()).dtype == torch.float64
    ref = causal_conv(u, k)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = causal_conv(u.bfloat16(), k)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.02, atol=0.05)


def test_gradcheck():
    u = torch.randn(1, 2, 6, dtype=torch.float64, requires_grad=True)
    k0 = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    k1 = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_conv, (u, k0))
    assert torch.autograd.gradcheck(bidirectional_conv, (u, k0, k1))
