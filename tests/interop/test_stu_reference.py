"""lindy's STU equals the two reference STUs, whose forwards are written here from their definitions
(flash-stu-2 ``flash_stu/utils/stu_utils.convolve`` + ``modules/stu.py``; spectral_ssm ``stu_utils`` +
``model.apply_stu``), with parameters of the references' names and shapes, in float32 to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lindy.interop import stu as interop
from lindy.interop.stu import reference_filters, stu_from_flash_stu, stu_from_spectral_ssm

L, K, D = 32, 8, 6


def _conv_pow2(u, v):
    """flash-stu's FFT convolution: u (B, L, C), v (L, C), n = next power of two >= 2L - 1, first L."""
    length = u.shape[1]
    n = 1 << (2 * length - 2).bit_length()
    return torch.fft.irfft(torch.fft.rfft(u, n=n, dim=1) * torch.fft.rfft(v, n=n, dim=0), n=n, dim=1)[
        :, :length
    ]


def flash_reference(x, phi, sd, use_approx, use_hankel_L):
    length = x.shape[1]
    sgn = torch.ones(1, length, 1)
    sgn[:, 1::2] = -1
    phi = phi.float()
    if use_approx:
        x_proj, phi_proj = x @ sd["M_inputs"], phi @ sd["M_filters"]
        plus = _conv_pow2(x_proj, phi_proj)
        minus = _conv_pow2(x_proj * sgn, phi_proj) * sgn
        return plus if use_hankel_L else plus + minus
    b, _, d_in = x.shape
    u = x[:, :, None, :].expand(b, length, phi.shape[1], d_in)  # (B, L, K, d_in)
    v = phi[:, :, None]
    u_plus = _conv_pow2(u.reshape(b, length, -1), v.expand(-1, -1, d_in).reshape(length, -1)).view(u.shape)
    y = torch.tensordot(u_plus, sd["M_phi_plus"], dims=([2, 3], [0, 1]))
    if not use_hankel_L:
        s4 = sgn[..., None]
        u_minus = _conv_pow2((u * s4).reshape(b, length, -1), v.expand(-1, -1, d_in).reshape(length, -1))
        y = y + torch.tensordot(u_minus.view(u.shape) * s4, sd["M_phi_minus"], dims=([2, 3], [0, 1]))
    return y


@pytest.mark.parametrize(
    "use_approx,use_hankel_L", [(True, False), (False, False), (True, True), (False, True)]
)
def test_flash_stu(use_approx, use_hankel_L):
    g = torch.Generator().manual_seed(0)
    if use_approx:
        sd = {
            "M_inputs": torch.randn(D, D, generator=g) / D**0.5,
            "M_filters": torch.randn(K, D, generator=g),
        }
    else:
        sd = {"M_phi_plus": torch.randn(K, D, D, generator=g) * 0.1}
        if not use_hankel_L:
            sd["M_phi_minus"] = torch.randn(K, D, D, generator=g) * 0.1
    phi = reference_filters(L, K, "L" if use_hankel_L else "standard")
    x = torch.randn(3, L, D, generator=g)
    want = flash_reference(x, phi, sd, use_approx, use_hankel_L)
    for given in (None, phi.float()):
        layer = stu_from_flash_stu(
            sd, seq_len=L, num_eigh=K, use_approx=use_approx, use_hankel_L=use_hankel_L, phi=given
        )
        torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)


def test_flash_stu_with_flipped_and_foreign_filters():
    g = torch.Generator().manual_seed(1)
    sd = {"stu.M_inputs": torch.randn(D, D, generator=g), "stu.M_filters": torch.randn(K, D, generator=g)}
    plain = {k.split(".")[1]: v for k, v in sd.items()}
    x = torch.randn(2, L, D, generator=g)
    flipped = reference_filters(L, K) * torch.tensor([1.0, -1.0] * (K // 2), dtype=torch.float64)
    layer = stu_from_flash_stu(sd, seq_len=L, num_eigh=K, phi=flipped)
    assert not hasattr(layer, "custom_filters")  # signs absorbed into M_filters
    torch.testing.assert_close(
        layer(x), flash_reference(x, flipped, plain, True, False), atol=1e-5, rtol=1e-5
    )
    foreign = torch.randn(L, K, generator=g, dtype=torch.float64) * 0.1
    layer = stu_from_flash_stu(sd, seq_len=L, num_eigh=K, phi=foreign)
    assert hasattr(layer, "custom_filters")
    torch.testing.assert_close(
        layer(x), flash_reference(x, foreign, plain, True, False), atol=1e-5, rtol=1e-5
    )


def deepmind_reference(x, params, eigh):
    """model.apply_stu per sequence, vmapped over the batch, in float32 (NumPy-style definitions)."""
    m_y, m_u, m_phi = (torch.as_tensor(params[n]) for n in ("m_y", "m_u", "m_phi"))
    values, vectors = (torch.as_tensor(a, dtype=torch.float32) for a in eigh)
    outs = []
    for u in x:  # (L, d_in)
        length, d_in = u.shape
        conv = torch.stack(
            [_conv_pow2(u[None], vectors[:, k : k + 1].expand(-1, d_in))[0] for k in range(K)], 1
        )
        x_tilde = (conv * values[None, :, None] ** 0.25).reshape(length, -1)  # (L, K d_in), k-major
        x_tilde = torch.cat([torch.zeros(2, x_tilde.shape[1]), x_tilde[:-2]])  # shift(shift(.))
        delta_phi = x_tilde @ m_phi
        o = torch.einsum("oik,li->klo", m_u, u)
        k_u = m_u.shape[-1]
        o = torch.stack([torch.roll(o[j], j, 0) for j in range(k_u)])
        mask = torch.triu(torch.ones(k_u, length))[..., None]
        deltas = delta_phi + (o * mask).sum(0)
        carry, ys = torch.zeros(m_y.shape[1], m_y.shape[0]), []
        for delta in deltas:  # lax.scan of compute_y_t
            y = torch.tensordot(m_y, carry, dims=2) + delta
            carry = torch.roll(carry, 1, 0)
            carry[0] = y
            ys.append(y)
        outs.append(torch.stack(ys))
    return torch.stack(outs)


@pytest.mark.parametrize("nested", [False, True])
def test_spectral_ssm(nested):
    rng = np.random.default_rng(0)
    params = {
        "m_y": (rng.standard_normal((D, 2, D)) * 0.1).astype(np.float32),
        "m_u": (rng.standard_normal((D, D, 3)) / D**0.5).astype(np.float32),
        "m_phi": (rng.standard_normal((D * K, D)) * 0.1).astype(np.float32),
    }
    sigma, vectors = np.linalg.eigh(interop.hankel_matrix(L).numpy())
    eigh = (sigma[-K:], vectors[:, -K:])
    x = torch.as_tensor(rng.standard_normal((2, L, D)).astype(np.float32))
    want = deepmind_reference(x, params, eigh)
    given = {"stu/~/stu": params} if nested else params
    for e in (None, eigh):
        layer = stu_from_spectral_ssm(given, input_len=L, num_eigh=K, eigh=e)
        torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)
    # streaming the loaded layer gives the same numbers
    state, ys = layer.initial_state(2), []
    for a, b in [(0, 5), (5, 6), (6, L)]:
        y, state = layer.forward_with_state(x[:, a:b], state)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), want, atol=1e-5, rtol=1e-5)


def test_bad_reference_parameters():
    with pytest.raises(ValueError, match="M_inputs"):
        stu_from_flash_stu({}, seq_len=L, num_eigh=K)
    with pytest.raises(ValueError, match="m_u"):
        stu_from_spectral_ssm(
            {"m_phi": np.zeros((D * K, D)), "m_u": np.zeros((D, D, 2))}, input_len=L, num_eigh=K
        )
