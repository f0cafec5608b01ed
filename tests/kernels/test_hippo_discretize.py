import pytest
import torch

from lindy.kernels import discretize_diag, dplr, gbt_dense, lagt, legs, legt, nplr, transition, zoh_dense

LEGS4_A = [
    [-1.0, 0, 0, 0],
    [-1.732051, -2, 0, 0],
    [-2.236068, -3.872983, -3, 0],
    [-2.645751, -4.582576, -5.916080, -4],
]
LEGS4_B = [1.0, 1.732051, 2.236068, 2.645751]


def close(a, b, atol=1e-6):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=0, atol=atol)


def test_legs_reference_values():
    A, B = legs(4)
    close(A, LEGS4_A)
    close(B, LEGS4_B)
    close(torch.linalg.eigvals(A).real.sort().values, [-4.0, -3, -2, -1])


def test_legt_conventions_and_lagt():
    A, B = legt(4, halved=False)
    close(A[0], [-1.0, 1.732051, -2.236068, 2.645751])
    close(A[1], [-1.732051, -3.0, 3.872983, -4.582576])
    close(A[3], [-2.645751, -4.582576, -5.916080, -7.0])
    close(B, LEGS4_B)
    Ah, Bh = legt(4)
    torch.testing.assert_close(Ah, 0.5 * A)
    torch.testing.assert_close(Bh, 0.5 * B)
    A, B = lagt(3, beta=2.0)
    close(A, [[-0.5, 0, 0], [-1, -0.5, 0], [-1, -1, -0.5]])
    close(B, [2.0, 2, 2])
    with pytest.raises(ValueError, match="measure"):
        transition("fourier", 4)


def test_nplr_reconstructs_legs_and_reference_eigenvalues():
    for N in (4, 16, 64):
        A, _ = legs(N)
        w, V, P, _ = nplr("legs", N)
        w, V = torch.view_as_complex(w), torch.view_as_complex(V)
        S = V @ torch.diag(w) @ V.conj().T
        torch.testing.assert_close(S.real - torch.outer(P, P), A, rtol=0, atol=1e-9)
        torch.testing.assert_close(S.imag, torch.zeros_like(A), rtol=0, atol=1e-9)
        S_real = S.real
        torch.testing.assert_close(S_real + S_real.T, -torch.eye(N, dtype=torch.float64), rtol=0, atol=1e-9)
    w = torch.view_as_complex(nplr("legs", 4).w)
    got = sorted(w.tolist(), key=lambda z: (z.imag, z.real))
    want = sorted([complex(-0.5, s * v) for v in (4.603293, 0.556501) for s in (1, -1)], key=lambda z: z.imag)
    for a, b in zip(got, want):
        assert abs(a - b) < 1e-6


def test_dplr_keeps_one_of_each_pair_and_projects_B():
    d = dplr("legs", 8)
    w = torch.view_as_complex(d.w)
    assert w.shape == (4,) and (w.imag > 0).all()
    torch.testing.assert_close(w.real, torch.full((4,), -0.5, dtype=torch.float64))
    full = nplr("legs", 8)
    V = torch.view_as_complex(full.V)
    B_proj = V.conj().T @ full.B.to(torch.complex128)
    wf = torch.view_as_complex(full.w)
    for i, wi in enumerate(w):
        j = torch.argmin((wf - wi).abs())
        assert abs(B_proj[j] - torch.view_as_complex(d.B)[i]) < 1e-9
    with pytest.raises(ValueError, match="even"):
        dplr("legs", 5)
    with pytest.raises(ValueError, match="legs"):
        dplr("legt", 4)


def test_bilinear_legs_reference_values():
    A, B = legs(4)
    Abar, Bbar = gbt_dense(A, B, 0.1, alpha=0.5)
    close(
        Abar,
        [
            [0.904762, 0, 0, 0],
            [-0.149961, 0.818182, 0, 0],
            [-0.159930, -0.306165, 0.739130, 0],
            [-0.141923, -0.271694, -0.428701, 0.666667],
        ],
    )
    close(Bbar, [0.095238, 0.149961, 0.159930, 0.141923])


def test_gbt_limits_and_batching():
    torch.manual_seed(0)
    A = torch.randn(3, 5, 5, dtype=torch.float64) - 3 * torch.eye(5, dtype=torch.float64)
    B = torch.randn(3, 5, dtype=torch.float64)
    dt = torch.tensor([0.01, 0.02, 0.05], dtype=torch.float64)
    I = torch.eye(5, dtype=torch.float64)
    Abar, Bbar = gbt_dense(A, B, dt, alpha=0.0)  # forward Euler
    torch.testing.assert_close(Abar, I + dt[:, None, None] * A)
    torch.testing.assert_close(Bbar, dt[:, None] * B)
    Abar, Bbar = gbt_dense(A, B, dt, alpha=1.0)  # backward Euler
    torch.testing.assert_close(Abar, torch.linalg.inv(I - dt[:, None, None] * A))
    with pytest.raises(ValueError, match="alpha"):
        gbt_dense(A, B, dt, alpha=1.5)


def test_zoh_dense_matches_diagonal_form():
    torch.manual_seed(1)
    N, dt = 4, 0.3
    lam = -torch.rand(N, dtype=torch.float64) - 0.1
    Q = torch.randn(N, N, dtype=torch.float64) + 3 * torch.eye(N, dtype=torch.float64)
    A = Q @ torch.diag(lam) @ torch.linalg.inv(Q)
    B = torch.randn(N, dtype=torch.float64)
    Abar, Bbar = zoh_dense(A, B, dt)
    torch.testing.assert_close(Abar, Q @ torch.diag(torch.exp(dt * lam)) @ torch.linalg.inv(Q))
    factor = torch.diag((torch.exp(dt * lam) - 1) / lam)
    torch.testing.assert_close(Bbar, Q @ factor @ torch.linalg.inv(Q) @ B)
    # the complex diagonal form gives the same numbers on a diagonal A
    w = torch.complex(lam, torch.zeros_like(lam))
    log_abar, abar, fac = discretize_diag(torch.view_as_real(w), torch.tensor(dt, dtype=torch.float64), "zoh")
    torch.testing.assert_close(torch.view_as_complex(abar), torch.exp(dt * w))
    torch.testing.assert_close(torch.view_as_complex(fac), (torch.exp(dt * w) - 1) / w)
    torch.testing.assert_close(torch.view_as_complex(log_abar), dt * w)
    # singular A (x' = u): Abar = 1, Bbar = dt, where A^-1 (Abar - I) B would divide by zero
    Abar, Bbar = zoh_dense(torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64), dt)
    close(Abar, [[1.0]])
    close(Bbar, [dt])


def test_bilinear_diag_matches_dense_gbt():
    w = torch.complex(
        torch.tensor([-0.5, -1.0], dtype=torch.float64), torch.tensor([3.0, 0.5], dtype=torch.float64)
    )
    dt = torch.tensor(0.05, dtype=torch.float64)
    log_abar, abar, factor = discretize_diag(torch.view_as_real(w), dt, "bilinear")
    expected = (1 + dt * w / 2) / (1 - dt * w / 2)
    torch.testing.assert_close(torch.view_as_complex(abar), expected)
    torch.testing.assert_close(torch.exp(torch.view_as_complex(log_abar)), expected)
    torch.testing.assert_close(torch.view_as_complex(factor), dt / (1 - dt * w / 2))
    with pytest.raises(ValueError, match="method"):
        discretize_diag(torch.view_as_real(w), dt, "euler")
