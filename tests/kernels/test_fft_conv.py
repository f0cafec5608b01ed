import importlib

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


# --- CPU blocked path: small CHUNK_BYTES forces several blocks on small shapes ---------------------------

fft_conv = importlib.import_module("lindy.kernels.fft_conv")


def plain_conv(u, k):
    """The whole-batch formula, differentiated by autograd: the reference for the blocked path."""
    n = 2 * u.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)[..., : u.shape[-1]]


def rows_per_block(monkeypatch, rows, length):
    # float64 spectra: (L + 1) complex128 values per row
    monkeypatch.setattr(fft_conv, "CHUNK_BYTES", rows * (length + 1) * 16)
    monkeypatch.setattr(fft_conv, "MIN_ROWS", 1)


@pytest.mark.parametrize(
    "u_shape, k_shape, rows",
    [
        ((3, 5, 37), (5, 37), 2),  # 5 kernel rows in blocks of 2: a ragged last block
        ((3, 5, 37), (5, 9), 3),  # short kernel
        ((4, 3, 20), (3, 20), 7),  # blocks span 2 batch rows of all 3 kernel rows; 4 batch rows: ragged
        ((2, 4, 1, 24), (4, 1, 24), 3),  # LSSL's (B, H, M=1, L) input
        ((2, 3, 16), (2, 3, 16), 4),  # no broadcast
        ((5, 16), (1, 16), 2),  # one kernel row for every row
        ((2, 3, 16), (1, 3, 5), 1),  # explicit leading 1, one row per block
    ],
)
def test_blocked_equals_whole_batch_formula(monkeypatch, u_shape, k_shape, rows):
    rows_per_block(monkeypatch, rows, u_shape[-1])
    torch.manual_seed(0)
    u = torch.randn(u_shape, dtype=torch.float64, requires_grad=True)
    k = torch.randn(k_shape, dtype=torch.float64, requires_grad=True)
    plan = fft_conv._block_plan(u, k.shape[:-1])
    assert plan is not None and len(fft_conv._Buffers(*plan, u_shape[-1], u.dtype).blocks) > 1
    y = causal_conv(u, k)
    ref = plain_conv(u, k)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(y, direct_causal(u.detach(), k.detach().expand(*u_shape[:-1], -1)))
    g = torch.randn_like(y)
    ref_grads = torch.autograd.grad(ref, (u, k), g)
    torch.testing.assert_close(torch.autograd.grad(y, (u, k), g), ref_grads)
    # one gradient at a time (the other input's branch is skipped)
    k_only = torch.autograd.grad(causal_conv(u.detach(), k), k, g)[0]
    u_only = torch.autograd.grad(causal_conv(u, k.detach()), u, g)[0]
    torch.testing.assert_close((u_only, k_only), ref_grads)


def test_blocked_strided_input_and_float32(monkeypatch):
    rows_per_block(monkeypatch, 3, 30)
    x = torch.randn(3, 30, 5, dtype=torch.float64, requires_grad=True)  # (B, L, H) as the layers hold it
    k = torch.randn(5, 30, dtype=torch.float64, requires_grad=True)
    u = x.transpose(1, 2)
    y, ref = causal_conv(u, k), plain_conv(u, k)
    assert y.is_contiguous()
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, (x, k), g), torch.autograd.grad(ref, (x, k), g))
    y32 = causal_conv(u.detach().float(), k.detach().float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32, ref.detach().float(), rtol=1e-4, atol=1e-4)


def test_blocked_bidirectional_spectrum_path_and_gradcheck(monkeypatch):
    rows_per_block(monkeypatch, 2, 8)  # the bidirectional kernel (length 2L) shares the 2L circle
    u = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    k0 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    k1 = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    k = torch.cat([k0, k1.flip(-1)], dim=-1)
    torch.testing.assert_close(bidirectional_conv(u, k0, k1), plain_conv(u, k))
    with torch.no_grad():
        torch.testing.assert_close(causal_conv(u, k_f=kernel_spectrum(k0, 8)), plain_conv(u, k0))
    assert torch.autograd.gradcheck(causal_conv, (u, k0))
    assert torch.autograd.gradcheck(bidirectional_conv, (u, k0, k1))


def test_chunk_bytes_zero_disables_blocking(monkeypatch):
    u, k = torch.randn(2, 3, 10, dtype=torch.float64), torch.randn(3, 10, dtype=torch.float64)
    assert fft_conv._block_plan(u, k.shape[:-1]) == (2, 3)
    monkeypatch.setattr(fft_conv, "CHUNK_BYTES", 0)
    assert fft_conv._block_plan(u, k.shape[:-1]) is None
    torch.testing.assert_close(causal_conv(u, k), plain_conv(u, k))


def test_broadcast_input_takes_whole_batch_path():
    # u broadcast along the kernel's channel dim (LSSL with M > 1): no block plan, same results
    u = torch.randn(2, 4, 1, 12, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 3, 12, dtype=torch.float64, requires_grad=True)
    assert fft_conv._block_plan(u, k.shape[:-1]) is None
    y, ref = causal_conv(u, k), plain_conv(u, k)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, (u, k), g), torch.autograd.grad(ref, (u, k), g))
