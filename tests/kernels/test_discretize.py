"""gbt_dense stays right where MKL's batched LU does not (torch 2.13 CPU, after torch.set_num_threads)."""

import subprocess
import sys

CODE = """
import torch
from lindy.kernels.discretize import gbt_dense
torch.set_num_threads(2)
N = 160
I = torch.eye(N, dtype=torch.float64)
A = -I.repeat(3, 1, 1) + 0.01 * torch.randn(3, N, N, dtype=torch.float64)
B = torch.ones(N, dtype=torch.float64)
dt = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)[:, None, None]
Abar, Bbar = gbt_dense(A, B, dt[:, 0, 0])
assert torch.allclose((I - 0.5 * dt * A) @ Abar, I + 0.5 * dt * A, atol=1e-10)
print("ok")
"""


def test_gbt_of_large_batches_after_set_num_threads():
    """Batched LU above N = 128 fails inside MKL once set_num_threads was called; gbt_dense must not
    (a subprocess, since the thread setting is process-wide)."""
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-500:]
