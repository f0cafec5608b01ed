"""A run killed with SIGKILL (or stopped with SIGINT, Ctrl-C) and resumed ends bit-identical to the
uninterrupted run (CPU), logs included; its timing covers the whole run."""

import csv
import json
import shlex
import signal

import pytest
import torch
from omegaconf import OmegaConf

from lindy.train.checkpoint import load_checkpoint
from lindy.train.config import compose_config
from lindy.train.resume import KILL_ENV, SIGNAL_ENV, kill_after_step


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
# Ctrl-C (SIGINT) after step 11: a clean stop that writes last.pt at step 11 and prints the command that
# resumes, which is run as printed.
@pytest.mark.parametrize(
    ("kill_after", "resumes_at", "sig"),
    [(11, 9, "KILL"), (8, 8, "KILL"), (16, 16, "KILL"), (11, 11, "INT")],
    ids=["mid_epoch", "epoch_end", "after_last", "sigint"],
)
def test_sigkill_then_resume_is_bit_identical(
    whole, tiny, tmp_path, lindy_cli, monkeypatch, kill_after, resumes_at, sig
):
    broken = tmp_path / "broken"

    monkeypatch.setenv(KILL_ENV, str(kill_after))
    monkeypatch.setenv(SIGNAL_ENV, sig)
    killed = lindy_cli([*tiny, f"trainer.run_dir={broken}", "trainer.checkpoint_every_steps=3"])
    monkeypatch.delenv(KILL_ENV)
    monkeypatch.delenv(SIGNAL_ENV)
    assert not (broken / "summary.json").exists()
    first = load_checkpoint(broken / "last.pt")
    assert first["progress"]["step"] == resumes_at

    # a safe change on resume (a log interval) is allowed, and recorded as history
    again = [*tiny, f"trainer.run_dir={broken}", "trainer.checkpoint_every_steps=3", "trainer.resume=auto"]
    again.append("trainer.log_every_steps=7")
    if sig == "KILL":
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    else:
        assert killed.returncode == 130, killed.stderr
        assert f"interrupted after step {kill_after}; wrote {broken / 'last.pt'}" in killed.stderr
        printed = killed.stderr.strip().splitlines()[-1].strip()
        assert printed.startswith("lindy train ") and printed.endswith("trainer.resume=auto")
        again = [*shlex.split(printed)[2:], "trainer.log_every_steps=7"]
    resumed = lindy_cli(again, check=True)
    assert "resumed from" in resumed.stdout

    a, b = load_checkpoint(whole / "last.pt"), load_checkpoint(broken / "last.pt")
    assert a["progress"] == b["progress"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), f"{name} differs after resume"
    for key, value in a["optimizer"]["state"].items():
        for k, v in value.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizer"]["state"][key][k]))
    assert rows(whole) == rows(broken)
    sa = json.loads((whole / "summary.json").read_text())
    sb = json.loads((broken / "summary.json").read_text())
    assert sa["test"] == sb["test"]

    # the whole run's time and tokens, segment by segment (the killed process's up to its checkpoint)
    (one,) = sa["segments"]
    assert (one["from_step"], one["to_step"], one["tokens"]) == (0, 16, 16 * 8 * 20)
    before, after = sb["segments"]
    assert before == first["timing"]["segments"][0] and before["to_step"] == resumes_at
    assert (after["from_step"], after["to_step"]) == (resumes_at, 16)
    assert before["tokens"] + after["tokens"] == 16 * 8 * 20
    assert sb["wall_time_s"] == pytest.approx(before["wall_s"] + after["wall_s"], abs=0.2)
    assert sb["tokens_per_s"] == pytest.approx(16 * 8 * 20 / sb["wall_time_s"], rel=0.1)
    with open(broken / "metrics.csv") as f:
        later = [float(r["elapsed_s"]) for r in csv.DictReader(f) if int(r["step"]) > resumes_at]
    assert all(e >= before["wall_s"] - 0.1 for e in later)  # metrics.csv's clock did not restart
    assert sb["resume_history"] == [
        {"step": resumes_at, "changed": {"trainer.log_every_steps": {"from": 50, "to": 7}}}
    ]
    config = OmegaConf.load(broken / "config.yaml")
    assert config.trainer.log_every_steps == 7 and config.resume_history[0].step == resumes_at


def test_resume_auto_without_checkpoint_starts_fresh(tiny, tmp_path, lindy_cli):
    proc = lindy_cli(
        [*tiny, f"trainer.run_dir={tmp_path / 'r'}", "trainer.resume=auto", "trainer.max_epochs=1"],
        check=True,
    )
    assert "resumed" not in proc.stdout
    assert f"nothing to resume in {tmp_path / 'r'}; starting a fresh run" in proc.stdout
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
