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


# --- a fixed kernel passed as its spectrum: the same Function, blocks and backward as the kernel ----------


def count_blocked_calls(monkeypatch):
    """Wrap the blocked forward and backward to count their calls: {"forward": n, "backward": n}."""
    calls = {"forward": 0, "backward": 0}
    for key, name in (("forward", "_blocked_forward"), ("backward", "_blocked_backward")):
        inner = getattr(fft_conv, name)

        def wrapped(*args, _inner=inner, _key=key):
            calls[_key] += 1
            return _inner(*args)

        monkeypatch.setattr(fft_conv, name, wrapped)
    return calls


@pytest.mark.parametrize("blocked", [True, False], ids=["blocked", "whole-batch"])
@pytest.mark.parametrize(
    "u_shape, k_shape",
    [((3, 5, 37), (5, 37)), ((3, 5, 37), (5, 9)), ((2, 4, 1, 24), (4, 1, 24)), ((5, 16), (1, 16))],
)
def test_spectrum_path_equals_kernel_path(monkeypatch, blocked, u_shape, k_shape):
    length = u_shape[-1]
    if blocked:
        rows_per_block(monkeypatch, 2, length)
    else:
        monkeypatch.setattr(fft_conv, "CHUNK_BYTES", 0)
    calls = count_blocked_calls(monkeypatch)
    torch.manual_seed(1)
    u = torch.randn(u_shape, dtype=torch.float64, requires_grad=True)
    k = torch.randn(k_shape, dtype=torch.float64, requires_grad=True)
    if blocked:
        assert len(fft_conv._Buffers(*fft_conv._block_plan(u, k.shape[:-1]), length, u.dtype).blocks) > 1
    y_k = causal_conv(u, k)
    g = torch.randn_like(y_k)
    grads_k = torch.autograd.grad(y_k, (u, k), g)
    y_f = causal_conv(u, k_f=kernel_spectrum(k, length))  # k's gradient through kernel_spectrum's rfft
    grads_f = torch.autograd.grad(y_f, (u, k), g)
    assert calls == ({"forward": 2, "backward": 2} if blocked else {"forward": 0, "backward": 0})
    torch.testing.assert_close(y_f, y_k, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads_f, grads_k, rtol=1e-12, atol=1e-12)
    # u's gradient alone, the spectrum fixed (no grad), and no grad at all
    k_f = kernel_spectrum(k.detach(), length)
    u_only = torch.autograd.grad(causal_conv(u, k_f=k_f), u, g)[0]
    torch.testing.assert_close(u_only, grads_k[0], rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(causal_conv(u, k_f=k_f), y_k, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("blocked", [True, False], ids=["blocked", "whole-batch"])
def test_spectrum_gradient_equals_autograd_and_gradcheck(monkeypatch, blocked):
    if blocked:
        rows_per_block(monkeypatch, 2, 7)
    else:
        monkeypatch.setattr(fft_conv, "CHUNK_BYTES", 0)
    torch.manual_seed(2)
    u = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    k_f = torch.randn(3, 8, dtype=torch.complex128, requires_grad=True)  # imaginary DC and Nyquist too
    y = causal_conv(u, k_f=k_f)
    n = 2 * u.shape[-1]
    ref = torch.fft.irfft(torch.fft.rfft(u, n=n) * k_f, n=n)[..., : u.shape[-1]]
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, (u, k_f), g), torch.autograd.grad(ref, (u, k_f), g))
    assert torch.autograd.gradcheck(lambda a, b: causal_conv(a, k_f=b), (u, k_f))
    assert torch.autograd.gradcheck(lambda a: causal_conv(a, k_f=k_f.detach()), (u,))


def test_spectrum_dtypes():
    u, k = torch.randn(2, 3, 12), torch.randn(3, 12)
    y = causal_conv(u, k_f=kernel_spectrum(k, 12))
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, causal_conv(u, k))
    y64 = causal_conv(u, k_f=kernel_spectrum(k.double(), 12))  # a float64 spectrum: float64 FFTs
    assert y64.dtype == torch.float32
    torch.testing.assert_close(y64, causal_conv(u.double(), k.double()).float())
    with pytest.raises(ValueError, match="L \\+ 1"):
        causal_conv(u, k_f=kernel_spectrum(k, 13))
