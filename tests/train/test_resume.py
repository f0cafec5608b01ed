"""A run killed with SIGKILL and resumed ends bit-identical to the uninterrupted run (CPU), logs included."""

import csv
import json
import signal

import pytest
import torch

from lindy.train.checkpoint import load_checkpoint


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [
            {k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in csv.DictReader(f)
        ]


@pytest.fixture(scope="module")
def whole(tiny, lindy_cli, tmp_path_factory):
    """The uninterrupted run both resume cases are compared with (trained once)."""
    run_dir = tmp_path_factory.mktemp("whole")
    lindy_cli([*tiny, f"trainer.run_dir={run_dir}"], check=True)
    return run_dir


# 8 steps per epoch, checkpoints every 3 steps. Killed after step 11 (epoch 1, batch 3): resumes from step 9
# and redoes steps 10-11. Killed after step 8: resumes from the end-of-epoch checkpoint, whose running
# training loss must already be the new epoch's (empty), or the next epoch's logged train_loss is wrong.
@pytest.mark.parametrize(("kill_after", "resumes_at"), [(11, 9), (8, 8)], ids=["mid_epoch", "epoch_end"])
def test_sigkill_then_resume_is_bit_identical(whole, tiny, tmp_path, lindy_cli, kill_after, resumes_at):
    broken = tmp_path / "broken"

    killed = lindy_cli(
        [
            *tiny,
            f"trainer.run_dir={broken}",
            "trainer.checkpoint_every_steps=3",
            f"trainer.debug_kill_after_step={kill_after}",
        ]
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (broken / "summary.json").exists()
    assert load_checkpoint(broken / "last.pt")["progress"]["step"] == resumes_at

    resumed = lindy_cli(
        [*tiny, f"trainer.run_dir={broken}", "trainer.checkpoint_every_steps=3", "trainer.resume=auto"],
        check=True,
    )
    assert "resumed from" in resumed.stdout

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(broken / "last.pt")
    assert a["progress"] == b["progress"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
    for key, value in a["optimizer"]["state"].items():
        for k, v in value.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizer"]["state"][key][k]))
    assert rows(whole) == rows(broken)
    sa = (whole / "summary.json").read_text()
    sb = (broken / "summary.json").read_text()
    assert json.loads(sa)["test"] == json.loads(sb)["test"]


def test_resume_auto_without_checkpoint_starts_fresh(tiny, tmp_path, lindy_cli):
    proc = lindy_cli(
        [*tiny, f"trainer.run_dir={tmp_path / 'r'}", "trainer.resume=auto", "trainer.max_epochs=1"],
        check=True,
    )
    assert "resumed" not in proc.stdout
    assert (tmp_path / "r" / "summary.json").exists()
