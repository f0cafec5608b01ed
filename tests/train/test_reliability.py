"""Atomic checkpoints, safe loading, non-finite loss, missing data, config errors, export."""

import json
import os
import pickle
import re

import pytest
import torch

import lindy
from lindy.data import TaskInfo
from lindy.models import build_model
from lindy.train.checkpoint import load_checkpoint, save_atomic


def test_crash_while_writing_never_corrupts_last(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"w": torch.ones(3)}, path)

    def crash(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_tampered_pickle_fails_safely(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "last.pt"
    with open(bad, "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny, tmp_path, lindy_cli):
    run = tmp_path / "nan"
    proc = lindy_cli(
        [*tiny, f"trainer.run_dir={run}", "optimizer.lr=1e25", "trainer.checkpoint_every_steps=1"]
    )
    assert proc.returncode == 3, proc.stderr
    assert "non-finite" in proc.stderr and "at step" in proc.stderr and "group" in proc.stderr
    state = load_checkpoint(run / "last.pt")
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    # the checkpoint the message names exists, at the step it says
    named = re.search(r"the last good checkpoint is (\S+) \(step (\d+)\)", proc.stderr)
    assert named, proc.stderr
    assert named.group(1) == str(run / "last.pt") and int(named.group(2)) == state["progress"]["step"]


def test_missing_data_path_fails_before_training(tiny, tmp_path, lindy_cli):
    proc = lindy_cli(
        ["data=smnist", f"data.root={tmp_path / 'nowhere'}", f"trainer.run_dir={tmp_path / 'r'}"]
    )
    assert proc.returncode == 2
    assert "MNIST/raw" in proc.stderr and "train-images-idx3-ubyte" in proc.stderr
    assert not (tmp_path / "r" / "last.pt").exists()


def test_config_errors_name_the_valid_choices(tiny, lindy_cli):
    proc = lindy_cli(["experiment=s4d/smnist_embeded"])
    assert proc.returncode == 2 and "s4d/smnist_embedded" in proc.stderr
    proc = lindy_cli(["trainer.max_epoch=3"])
    assert proc.returncode == 2 and "max_epoch" in proc.stderr
    proc = lindy_cli(["--help"])
    assert proc.returncode == 0 and "s4d/smnist_embedded" in proc.stdout


def test_run_folder_export_eval_and_load_pretrained(tiny, tmp_path, lindy_cli):
    run = tmp_path / "run"
    lindy_cli([*tiny, f"trainer.run_dir={run}", "trainer.max_epochs=1"], check=True)
    for name in ("config.yaml", "metrics.csv", "best.pt", "last.pt", "summary.json", "curves.png"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert {"test", "parameters", "tokens_per_s", "wall_time_s", "device", "git_commit"} <= set(summary)
    # the status of every C++ fast path this run tried ({} when its layers have none)
    assert isinstance(summary["fast_paths"], dict)
    assert all(isinstance(v, str) for v in summary["fast_paths"].values())
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]  # every atomic write renamed its temp

    proc = lindy_cli(["export", str(run)], module="lindy.cli", check=True)
    model = lindy.load_pretrained(run / "export")
    state = load_checkpoint(run / "best.pt")
    x = torch.rand(3, 20, 2)
    ref = build_model(state["model_config"], TaskInfo(**state["info"])).eval()
    ref.load_state_dict(state["model"])
    torch.testing.assert_close(model(x), ref(x), rtol=0, atol=0)

    proc = lindy_cli(["eval", str(run)], module="lindy.cli", check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-6)
