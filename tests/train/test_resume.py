"""A run killed with SIGKILL and resumed ends bit-identical to the uninterrupted run (CPU), logs included."""

import csv
import json
import signal

import pytest
import torch

from lindy.train.checkpoint import load_checkpoint
from lindy.train.config import compose_config
from lindy.train.resume import KILL_ENV, kill_after_step


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
# Killed after the last step (16), once its checkpoints are written but before summary.json: the resumed
# run must not validate step 16 again (an extra metrics.csv row), only test and write the summary.
@pytest.mark.parametrize(
    ("kill_after", "resumes_at"), [(11, 9), (8, 8), (16, 16)], ids=["mid_epoch", "epoch_end", "after_last"]
)
def test_sigkill_then_resume_is_bit_identical(
    whole, tiny, tmp_path, lindy_cli, monkeypatch, kill_after, resumes_at
):
    broken = tmp_path / "broken"

    monkeypatch.setenv(KILL_ENV, str(kill_after))
    killed = lindy_cli([*tiny, f"trainer.run_dir={broken}", "trainer.checkpoint_every_steps=3"])
    monkeypatch.delenv(KILL_ENV)
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


def test_fault_injection_is_an_environment_variable_not_a_config_option(monkeypatch):
    assert KILL_ENV == "LINDY_DEBUG_KILL_AFTER_STEP"
    assert not any("kill" in key for key in compose_config(["name=x"]).trainer)
    monkeypatch.delenv(KILL_ENV, raising=False)
    assert kill_after_step() is None
    monkeypatch.setenv(KILL_ENV, "7")
    assert kill_after_step() == 7
    monkeypatch.setenv(KILL_ENV, "soon")
    with pytest.raises(ValueError, match=KILL_ENV):
        kill_after_step()


def test_resume_drops_metrics_rows_after_the_checkpoint(tmp_path):
    """A crash between a metrics.csv row and its last.pt leaves a row the resumed run will log again."""
    from lindy.train.records import RunRecords

    records = RunRecords(tmp_path, "mse", tensorboard=False)
    for step in (3, 6, 9):
        records.log_eval({"epoch": 0, "step": step, "train_loss": 1.0, "val_loss": 1.0, "val_metric": 0.5})
    before = (tmp_path / "metrics.csv").read_bytes()
    records.drop_rows_after(9)
    assert (tmp_path / "metrics.csv").read_bytes() == before
    records.drop_rows_after(6)
    assert [int(r["step"]) for r in records.read()] == [3, 6]
    assert before.startswith((tmp_path / "metrics.csv").read_bytes())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.csv"]  # no temp files
