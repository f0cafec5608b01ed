"""The one eigendecomposition of HiPPO's normal part and its projections (nplr, dplr, normal_pairs,
normal_eig): consistent with each other, reconstructing S, and safe to modify."""

import numpy as np
import pytest
import torch

from lindy.kernels.hippo import MEASURES, dplr, low_rank, normal_eig, normal_pairs, nplr, transition

C = torch.view_as_complex


def normal_part(measure, N):
    A, _ = transition(measure, N)
    P = low_rank(measure, N)
    return A + P @ P.T


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("N", [1, 2, 5, 8, 16])
def test_normal_eig_reconstructs_and_pairs_conjugates(measure, N):
    w, V = normal_eig(measure, N)
    assert w.shape == (N,) and V.shape == (N, N) and w.dtype == V.dtype == torch.complex128
    S = normal_part(measure, N)
    torch.testing.assert_close(V @ torch.diag(w) @ V.conj().T, S.to(torch.complex128), rtol=0, atol=1e-9)
    torch.testing.assert_close(V.conj().T @ V, torch.eye(N, dtype=torch.complex128), rtol=0, atol=1e-12)
    shift = torch.diagonal(S).mean()
    assert (w.real == shift).all()
    pairs = N // 2
    top, bottom = w[0 : 2 * pairs : 2], w[1 : 2 * pairs : 2]
    assert (top.imag > 0).all()
    torch.testing.assert_close(bottom, top.conj(), rtol=0, atol=1e-9)
    assert (top.imag[1:] < top.imag[:-1]).all()  # decreasing |Im w|
    if N % 2:
        assert abs(w[-1].imag) < 1e-9
    for k in range(pairs):  # the partner's eigenvector is the conjugate, up to a phase
        assert abs(abs(torch.vdot(V[:, 2 * k].conj(), V[:, 2 * k + 1])) - 1) < 1e-9


def test_projections_share_one_decomposition():
    for N in (2, 8, 64):
        w_all, V_all = normal_eig("legs", N)
        d = dplr("legs", N)
        assert torch.equal(C(d.w), w_all[0::2]) and torch.equal(C(d.V), V_all[:, 0::2])
        w, V, P, B = normal_pairs("legs", N)
        assert torch.equal(w, w_all[0::2].flip(0)) and torch.equal(V, V_all[:, 0::2].flip(1))
        full = nplr("legs", N)
        assert torch.equal(C(full.w)[N // 2 :], w) and torch.equal(full.P, P[:, 0]) and torch.equal(full.B, B)
        torch.testing.assert_close(C(d.B), V.flip(1).conj().T @ B.to(torch.complex128), rtol=0, atol=0)


def test_ldnn_reference_kept_eigenvalues():
    """models.md, LDNN init: of HiPPO-LegS at 2n = 8 the reference keeps |Im| = 19.857, 19.857, 5.354, 5.354
    (with real part -1, its offset; the normal part's real part is -1/2)."""
    w, _ = normal_eig("legs", 8)
    np.testing.assert_allclose(w[:4].imag.abs().numpy(), [19.857, 19.857, 5.354, 5.354], atol=1e-3)
    np.testing.assert_allclose(w.real.numpy(), -0.5, atol=0)


def test_results_are_fresh_tensors():
    """The decomposition is cached; what a caller gets back must not alias the cache."""
    for fn in (nplr, dplr, normal_pairs, normal_eig):
        before = [t.clone() for t in fn("legs", 8)]
        for t in fn("legs", 8):
            t.zero_()
        for a, b in zip(before, fn("legs", 8)):
            assert torch.equal(a, b), fn.__name__


def test_argument_checks():
    assert torch.equal(normal_eig("legs", np.int64(4))[0], normal_eig("legs", 4)[0])
    for bad in (0, -2, True, 4.0):
        with pytest.raises(ValueError, match="N must be a positive int"):
            normal_eig("legs", bad)
    with pytest.raises(ValueError, match="measure must be one of"):
        normal_eig("fourier", 4)
    with pytest.raises(ValueError, match="legs"):
        nplr("legt", 4)
    with pytest.raises(ValueError, match="even"):
        normal_pairs("lagt", 3)
