import subprocess
import sys

import pytest
import torch

from lindy.data import build_data
from lindy.data.lif import generate_lif, lif_filename
from lindy.kernels import lif_reference


def test_check_values():
    x = torch.tensor([0.6, 0.7, 1.0, -0.3, 0.9, 0.5, 2.0, 0.95], dtype=torch.float64)
    mem, spike = lif_reference(x, 0.2)
    torch.testing.assert_close(
        mem, torch.tensor([0, 0.12, 0.164, 0, -0.06, 0.168, 0.1336, 0], dtype=torch.float64)
    )
    assert spike.tolist() == [0, 0, 1, 0, 0, 0, 1, 0]
    mem, spike = lif_reference(x, 0.125)
    expected = [0, 0.075, 0.096875, 0, -0.0375, 0.107813, 0.075977, 0]
    torch.testing.assert_close(mem, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6)
    assert spike.tolist() == [0, 0, 1, 0, 0, 0, 1, 0]


def test_threshold_scale_invariance():
    x = torch.randn(4, 200, dtype=torch.float64)
    mem, spike = lif_reference(x, 0.3, v_th=2.5)
    mem1, spike1 = lif_reference(x / 2.5, 0.3, v_th=1.0)
    assert torch.equal(spike, spike1)
    torch.testing.assert_close(mem / 2.5, mem1)


def test_generated_file_matches_sdn_layout(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lindy.cli", "data", "generate", "lif", "--split", "test", "--num", "16",
         "--length", "64", "--tau", "0.2", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    path = tmp_path / "test-mem-T64-N(0.0,1.0)-16-tau_0.2.pt"
    assert path.exists(), proc.stdout
    data = torch.load(path, weights_only=True)
    assert set(data) == {"input", "mem", "spike"}
    assert data["input"].shape == data["mem"].shape == data["spike"].shape == (16, 64)
    assert data["spike"].dtype == torch.int64 and data["mem"].dtype == torch.float32
    mem, spike = lif_reference(data["input"].double(), 0.2)
    torch.testing.assert_close(data["mem"], mem.float(), rtol=0, atol=1e-6)
    assert lif_filename("train", 50000) == "training-mem-T1024-N(0.0,1.0)-50000-tau_0.2.pt"
    with pytest.raises(ValueError, match="split"):
        lif_filename("val", 10)


def test_dataset_is_deterministic_and_rate_is_plausible():
    a = generate_lif(256, 1024, 0.2, seed=3)
    assert torch.equal(a["input"], generate_lif(256, 1024, 0.2, seed=3)["input"])
    assert 0.12 < a["spike"].float().mean() < 0.18  # ~0.148 at tau 0.2
    d = build_data("lif", n_train=4, n_val=2, n_test=2, length=32)
    x, y = d.train[0]
    assert x.shape == y.shape == (32, 1) and d.info.task == "per_step_regression"
