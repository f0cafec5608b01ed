"""Hankel filters (check values of research/models.md 7.4), their caches, and the two STU maps."""

from __future__ import annotations

import pytest
import torch

from lindy.kernels import spectral
from lindy.kernels.spectral import (
    ar_filter,
    ar_filter_naive,
    hankel_eigh,
    hankel_matrix,
    sign_normalize,
    spectral_conv,
    spectral_filters,
)

F64 = torch.float64


def t64(values):
    return torch.tensor(values, dtype=F64)


def test_hankel_entries():
    torch.testing.assert_close(hankel_matrix(8)[0, :4], t64([1 / 3, 1 / 12, 1 / 30, 1 / 60]))
    torch.testing.assert_close(
        hankel_matrix(8, "L")[0, :4], t64([1.066667, 0, 0.152381, 0]), atol=1e-6, rtol=0
    )
    z = hankel_matrix(7, "L")
    assert torch.equal(z, z.T) and (z[0, 1::2] == 0).all()


def test_eigenvalues_vectors_and_filters_at_l8():
    sigma_all = torch.linalg.eigvalsh(hankel_matrix(8))
    want_all = [1.504384e-11, 2.322707e-09, 1.571448e-07, 6.061531e-06, 1.434862e-04, 2.080463e-03]
    want_all += [2.199054e-02, 3.603465e-01]
    torch.testing.assert_close(sigma_all, t64(want_all), rtol=1e-5, atol=1e-16)
    sigma, v = hankel_eigh(8, 4)
    torch.testing.assert_close(sigma, t64(want_all[4:]), rtol=1e-5, atol=0)
    torch.testing.assert_close(sigma**0.25, t64([0.109447, 0.213570, 0.385087, 0.774783]), atol=1e-6, rtol=0)
    want_v = [
        [0.030994, -0.095110, -0.263003, 0.959563],
        [-0.360878, 0.584892, 0.662199, 0.252420],
        [0.560101, -0.094934, 0.500434, 0.104711],
        [0.333824, -0.344799, 0.347836, 0.053817],
        [-0.009170, -0.400488, 0.245862, 0.031427],
        [-0.254818, -0.384890, 0.178888, 0.019990],
        [-0.398226, -0.346515, 0.133844, 0.013522],
        [-0.469099, -0.303896, 0.102636, 0.009582],
    ]
    torch.testing.assert_close(v, t64(want_v), atol=1e-6, rtol=0)
    phi = spectral_filters(8, 4)
    torch.testing.assert_close(phi[0], t64([0.003392, -0.020313, -0.101279, 0.743453]), atol=1e-6, rtol=0)


def test_sign_convention_largest_entry_positive():
    _, v = hankel_eigh(16, 6)
    top = v.gather(0, v.abs().argmax(0)[None])[0]
    assert (top > 0).all()
    torch.testing.assert_close(sign_normalize(-v), v)


def test_top_eigenvalue_grows_with_l_and_hankel_l_values():
    for length, top in [(8, 0.3603465), (16, 0.3603909), (64, 0.3603933)]:
        assert abs(hankel_eigh(length, 1)[0][-1].item() - top) < 1e-7
    torch.testing.assert_close(
        hankel_eigh(8, 4, "L")[0].flip(0), t64([1.092269, 0.175244, 0.040396, 0.010536]), atol=1e-6, rtol=0
    )


def test_l1024_top_eigenvalues(tmp_path):
    sigma, _ = hankel_eigh(1024, 24, cache_dir=tmp_path)
    want = t64([0.3603933, 2.245237e-2, 2.805558e-3, 4.952738e-4, 1.085026e-4])
    torch.testing.assert_close(sigma.flip(0)[:5], want, rtol=1e-5, atol=0)
    assert abs(sigma[0].item() - 3.86e-15) < 0.05e-15
    sigma_l, _ = hankel_eigh(1024, 6, "L", cache_dir=tmp_path)
    want_l = t64([1.092561, 0.176195, 0.043381, 0.013282, 0.004676, 0.001818])
    torch.testing.assert_close(sigma_l.flip(0), want_l, atol=1e-6, rtol=0)


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path))
    spectral.clear_memory_cache()
    sigma, v = hankel_eigh(32, 5, disk=True)
    files = list(tmp_path.glob("hankel-standard-L32-K5-*.safetensors"))
    assert len(files) == 1
    spectral.clear_memory_cache()
    monkeypatch.setattr(torch.linalg, "eigh", None)  # a second process reads the file, no eigh
    sigma2, v2 = hankel_eigh(32, 5, disk=True)
    assert torch.equal(sigma, sigma2) and torch.equal(v, v2)
    assert hankel_eigh(32, 5, disk=True)[0] is sigma2  # then from memory
    spectral.clear_memory_cache()


def test_bad_arguments():
    with pytest.raises(ValueError, match="hankel"):
        hankel_matrix(4, "M")
    with pytest.raises(ValueError, match="num_filters"):
        hankel_eigh(4, 5)


def _naive_conv(u, filters, m):
    """y[b, t] = sum_k sum_s f_k[s] u[b, t - s] M_k, term by term."""
    batch, length, _ = u.shape
    y = torch.zeros(batch, length, m.shape[-1], dtype=u.dtype)
    for t in range(length):
        for s in range(t + 1):
            y[:, t] += torch.einsum("k,bi,kio->bo", filters[:, s], u[:, t - s], m)
    return y


@pytest.mark.parametrize("block_bytes", [1, 1 << 20])
def test_spectral_conv_matches_direct_sum_and_gradcheck(block_bytes, monkeypatch):
    monkeypatch.setattr(spectral, "BLOCK_BYTES", block_bytes)  # 1 byte: one bin per block
    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 7, 3, generator=g, dtype=F64)
    filters = torch.randn(4, 7, generator=g, dtype=F64)
    filters[:, 5:] = 0  # shorter filters are zero beyond their taps
    m = torch.randn(4, 3, 2, generator=g, dtype=F64)
    spec = torch.fft.rfft(filters, n=14)
    torch.testing.assert_close(spectral_conv(u, spec, m), _naive_conv(u, filters, m))
    u.requires_grad_(True)
    m.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: spectral_conv(a, spec, b), (u, m))


def test_spectral_conv_float32():
    u, filters, m = torch.randn(2, 16, 3), torch.randn(5, 16), torch.randn(5, 3, 4)
    y = spectral_conv(u, torch.fft.rfft(filters, n=32), m)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, _naive_conv(u, filters, m), atol=1e-4, rtol=1e-4)


def test_ar_filter_matches_naive_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, generator=g, dtype=F64, requires_grad=True)
    m_y = (0.3 * torch.randn(2, 3, 3, generator=g, dtype=F64)).requires_grad_(True)
    y0 = torch.randn(2, 2, 3, generator=g, dtype=F64, requires_grad=True)
    torch.testing.assert_close(ar_filter(x, m_y, y0), ar_filter_naive(x, m_y, y0))
    assert torch.autograd.gradcheck(ar_filter, (x, m_y, y0))


def test_ar_filter_impulse_response_is_geometric():
    x = torch.zeros(1, 6, 1, dtype=F64)
    x[0, 0, 0] = 1
    y = ar_filter(x, torch.full((1, 1, 1), 0.5, dtype=F64))
    torch.testing.assert_close(y[0, :, 0], 0.5 ** torch.arange(6, dtype=F64))


# ----------------------------------------------------------------------------------------------------
# SpectraLDS: the filters as impulse responses of a diagonal LDS
# ----------------------------------------------------------------------------------------------------
def test_lds_fit_reproduces_both_branches():
    fit = spectral.spectral_lds(512, 8, state_size=80, disk=False)
    phi = spectral_filters(512, 8)
    signs = (-1.0) ** torch.arange(512, dtype=F64)[:, None]
    half = fit.eigenvalues[:40]
    assert fit.eigenvalues.shape == (80,) and fit.readout.shape == (80, 16) and fit.mse.shape == (16,)
    assert (half > 0).all() and (half < 1).all() and torch.equal(fit.eigenvalues[40:], -half)
    assert (fit.readout[:40, 8:] == 0).all() and torch.equal(fit.readout[40:, 8:], fit.readout[:40, :8])
    impulse = spectral.lds_impulse(fit.eigenvalues, fit.readout, 512)
    mse = (impulse - torch.cat([phi, phi * signs], 1)).square().mean(0)
    torch.testing.assert_close(mse, fit.mse, rtol=1e-3, atol=1e-30)  # the reported error is the real one
    assert fit.mse.max() < 1e-24  # SpectraLDS: 7.7e-19 at state 160 (L = 8192)
    assert fit.readout.abs().max() < 1e3  # a well-conditioned readout: usable in float32


def test_lds_fit_hankel_l_is_symmetric_and_error_falls_with_state():
    fit = spectral.spectral_lds(256, 4, "L", state_size=40)
    assert torch.equal(fit.eigenvalues[20:], -fit.eigenvalues[:20]) and fit.readout.shape == (40, 4)
    assert fit.mse.max() < 1e-19  # measured 1.7e-20
    errors = [spectral.spectral_lds(256, 4, state_size=n, two_branches=False).mse.max() for n in (4, 8, 16)]
    assert errors[0] > errors[1] > errors[2]


def test_lds_fit_is_deterministic_and_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path))
    spectral.clear_memory_cache()
    fit = spectral.spectral_lds(64, 4, state_size=20, disk=True)
    assert len(list(tmp_path.glob("lds-standard-L64-K4-N20-B2-*.safetensors"))) == 1
    spectral.clear_memory_cache()
    again = spectral.spectral_lds(64, 4, state_size=20, disk=False)  # a fresh fit, not the file
    assert all(torch.equal(a, b) for a, b in zip(fit, again))
    spectral.clear_memory_cache()
    monkeypatch.setattr(spectral, "fit_lds", None)  # a second process reads the file, no fit
    loaded = spectral.spectral_lds(64, 4, state_size=20, disk=True)
    assert all(torch.equal(a, b) for a, b in zip(fit, loaded))
    assert spectral.spectral_lds(64, 4, state_size=20, disk=True) is loaded  # then from memory
    spectral.clear_memory_cache()


def test_lds_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        spectral.spectral_lds(32, 2, state_size=7)
    with pytest.raises(ValueError, match="even"):
        spectral.lds_eigenvalues(32, 5, symmetric=True)
    with pytest.raises(ValueError, match="state_size"):
        spectral.spectral_lds(32, 2, state_size=0)
