"""benchmarks/train_sdn.py: the fine-tune stage of the shipped SDNs and its --init file."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lindy.data.lif import generate_lif
from lindy.layers.sdn import FusedSDN, pretrained_path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_sdn.py"


@pytest.fixture(scope="module")
def train_sdn(script_loader):
    return script_loader(SCRIPT, "train_sdn_under_test")


def test_finetune_trains_the_fused_form_on_the_membrane_mae(train_sdn):
    torch.manual_seed(0)
    fused = FusedSDN(tau=0.2)
    data = generate_lif(16, 64, 0.2, seed=123)
    with torch.no_grad():
        before = F.l1_loss(fused(data["input"]), data["mem"]).item()
    train_sdn.finetune_fused(fused, 0.2, steps=200, lr=1e-2, batch=16, length=64)
    with torch.no_grad():
        after = F.l1_loss(fused(data["input"]), data["mem"]).item()
    assert after < 0.5 * before, (before, after)


def test_init_file_is_fine_tuned_and_written(train_sdn, tmp_path):
    out = tmp_path / "sdn.safetensors"
    argv = ["--tau", "0.2", "--init", str(pretrained_path(0.2)), "--finetune-steps", "2", "--length", "32"]
    result = train_sdn.main([*argv, "--batch-size", "4", "--out", str(out), "--force"])
    assert result["init"] == str(pretrained_path(0.2)) and len(result["finetune_l1"]) == 1
    assert {"agreement", "mae"} <= set(result["before_finetune"]) and result["written"] == str(out)
    written, shipped = FusedSDN.load(out), FusedSDN.load(pretrained_path(0.2))
    assert written.tau == 0.2
    assert not torch.equal(written.conv1.weight, shipped.conv1.weight)  # two Adam steps moved it


def test_init_for_another_tau_is_refused(train_sdn, tmp_path):
    with pytest.raises(ValueError, match="--init holds an SDN for tau=0.2"):
        train_sdn.main(["--tau", "0.125", "--init", str(pretrained_path(0.2)), "--out", str(tmp_path / "x")])
