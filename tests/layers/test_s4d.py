"""S4D specifics beyond the shared contract: reference kernel values, initialisations, the kernel cache,
optimiser hints, mixed precision, the anti-causal kernel and an inductor compile."""

import math

import pytest
import torch

from lindy.kernels.hippo import legs
from lindy.layers import S4D
from lindy.layers.s4d import s4d_init


def set_reference_params(layer, dt, C):
    with torch.no_grad():
        layer.log_dt.fill_(math.log(dt))
        layer.C.zero_()
        layer.C[..., 0] = C


def test_s4d_lin_reference_kernel():
    # S4D-Lin, H=1, N=4 (modes -1/2 + i pi n), dt=0.1, C=1, B=1, ZOH; D = 0 (it is folded into K[0])
    layer = S4D(1, d_state=4).double()
    set_reference_params(layer, 0.1, 1.0)
    with torch.no_grad():
        layer.D.zero_()
    k, _ = layer._kernels(5)
    expected = torch.tensor([0.387011, 0.350341, 0.300985, 0.244020, 0.184809], dtype=torch.float64)
    torch.testing.assert_close(k[0], expected, rtol=0, atol=5e-7)


def test_bilinear_kernel_matches_its_recurrence_by_hand():
    layer = S4D(1, d_state=2, disc="bilinear").double()
    set_reference_params(layer, 0.05, 1.0)
    with torch.no_grad():
        layer.D.fill_(0.7)
    a = complex(-0.5, 0.0)  # one mode: A = -1/2 (S4D-Lin, n = 0)
    abar = (1 + 0.05 * a / 2) / (1 - 0.05 * a / 2)
    bbar = 0.05 / (1 - 0.05 * a / 2)
    expected = torch.tensor(
        [2 * (bbar * abar**l).real + 0.7 * (l == 0) for l in range(6)], dtype=torch.float64
    )
    k, _ = layer._kernels(6)
    torch.testing.assert_close(k[0], expected)


@pytest.mark.parametrize("N", [4, 16, 64])
def test_initialisations(N):
    real, imag, b = s4d_init("lin", N)
    torch.testing.assert_close(imag, math.pi * torch.arange(N // 2, dtype=torch.float64))
    assert (real == -0.5).all() and (b[:, 0] == 1).all()
    _, imag_inv, _ = s4d_init("inv", N)
    n = torch.arange(N // 2, dtype=torch.float64)
    torch.testing.assert_close(imag_inv, N / math.pi * (N / (2 * n + 1) - 1))
    real_legs, imag_legs, _ = s4d_init("legs", N)
    # S4D-LegS: the eigenvalues of LegS + P P^T (its normal part) with positive imaginary part
    A, _ = legs(N)
    P = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    eig = torch.linalg.eigvals(A + torch.outer(P, P))
    eig = eig[eig.imag > 0]
    got = sorted(zip(real_legs.tolist(), imag_legs.tolist()), key=lambda z: z[1])
    want = sorted(zip(eig.real.tolist(), eig.imag.tolist()), key=lambda z: z[1])
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-8, atol=1e-8)


def test_kernel_cache_in_eval_and_invalidation():
    layer = S4D(3, d_state=4).eval()
    x = torch.randn(1, 10, 3)
    with torch.no_grad():
        y1 = layer(x)
        cached = layer._cache.value("kernel")[0]
        layer(x)
        assert layer._cache.value("kernel")[0] is cached, "eval-mode kernel recomputed for the same length"
        layer.log_dt.add_(0.5)  # an in-place update (as an optimiser step does) must invalidate it
        y2 = layer(x)
        assert layer._cache.value("kernel")[0] is not cached
        assert not torch.allclose(y1, y2)
        layer(torch.randn(1, 7, 3))
        assert layer._cache.key("kernel") == (7,)
    layer.train()
    layer(x)
    assert layer._cache.value("kernel") is None, "training mode must not cache (the kernel needs a graph)"


def test_optimiser_hints_only_on_ssm_parameters():
    layer = S4D(3, d_state=4, lr=2e-3)
    hinted = {n for n, p in layer.named_parameters() if hasattr(p, "_optim")}
    assert hinted == {"log_dt", "log_A_real", "A_imag", "B"}
    assert all(layer.get_parameter(n)._optim == {"lr": 2e-3, "weight_decay": 0.0} for n in hinted)
    assert "B" in dict(S4D(3, d_state=4, learn_B=False).named_buffers())


def test_bf16_autocast_keeps_ssm_in_float32():
    torch.manual_seed(0)
    layer = S4D(8, d_state=8)
    x = torch.randn(2, 64, 8)
    ref = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        k, _ = layer._kernels(64)
    assert k.dtype == torch.float32 and layer.log_dt.dtype == torch.float32
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


def test_bidirectional_is_causal_plus_anticausal_convolution():
    torch.manual_seed(0)
    layer = S4D(2, d_state=4, bidirectional=True).double().eval()
    L = 16
    x = torch.randn(1, L, 2, dtype=torch.float64)
    k, k_rev = layer._kernels(L)
    # y[t] = sum_{s<=t} k[t-s] u[s] + sum_{s>t} k_rev[s-t-1] u[s], by direct summation
    u = x[0].T  # (H, L)
    conv = torch.zeros_like(u)
    for t in range(L):
        for s in range(L):
            conv[:, t] += (k[:, t - s] if s <= t else k_rev[:, s - t - 1]) * u[:, s]
    expected = layer._output(conv.T.unsqueeze(0))
    torch.testing.assert_close(layer(x), expected)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert not torch.allclose(layer(x)[:, 0], layer(x2)[:, 0]), "bidirectional output ignores the future"


@pytest.mark.slow
def test_inductor_compile_matches_eager():
    torch.manual_seed(0)
    layer = S4D(4, d_state=8).eval()
    x = torch.randn(2, 33, 4)
    torch.testing.assert_close(torch.compile(layer)(x), layer(x), rtol=1e-5, atol=1e-5)
