"""Two CPU processes (gloo) end with the same weights and logged losses as one process with the same
global batch."""

import csv

import pytest
import torch

from lindy.train.checkpoint import load_checkpoint


def test_two_process_ddp_matches_one_process(tiny, tmp_path, lindy_cli):
    args = [*tiny, "model.dropout=0.0", "trainer.max_epochs=1", "trainer.max_steps=4"]
    lindy_cli([*args, f"trainer.run_dir={tmp_path / 'one'}"], check=True)
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533"]
    # no explicit run folder: both ranks must agree on rank 0's timestamped one
    lindy_cli([*args, f"trainer.run_root={tmp_path / 'two'}"], launcher=launcher, check=True)
    (two_dir,) = (tmp_path / "two" / "tiny").iterdir()
    assert (two_dir / "summary.json").exists()
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    two = load_checkpoint(two_dir / "last.pt")
    assert one["progress"]["step"] == two["progress"]["step"] == 4
    for name, tensor in one["model"].items():
        torch.testing.assert_close(two["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    # the logged training loss is the mean over both ranks (= the one process's), not rank 0's shard
    with open(tmp_path / "one" / "metrics.csv") as f, open(two_dir / "metrics.csv") as g:
        rows = [
            (float(a["train_loss"]), float(b["train_loss"]))
            for a, b in zip(csv.DictReader(f), csv.DictReader(g))
        ]
    assert rows
    for a, b in rows:
        assert b == pytest.approx(a, rel=1e-5)


def test_gradient_accumulation_matches_the_whole_batch(tiny, tmp_path, lindy_cli):
    args = [*tiny, "model.dropout=0.0", "trainer.max_epochs=1", "trainer.max_steps=3"]
    lindy_cli([*args, f"trainer.run_dir={tmp_path / 'one'}"], check=True)
    lindy_cli([*args, f"trainer.run_dir={tmp_path / 'acc'}", "trainer.accumulate=2"], check=True)
    one = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    acc = load_checkpoint(tmp_path / "acc" / "last.pt")["model"]
    for name, tensor in one.items():
        torch.testing.assert_close(acc[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_bf16_autocast_trains_and_keeps_ssm_parameters_float32(tiny, tmp_path, lindy_cli):
    run = tmp_path / "bf16"
    lindy_cli([*tiny, f"trainer.run_dir={run}", "trainer.precision=bf16", "trainer.max_epochs=1"], check=True)
    state = load_checkpoint(run / "last.pt")["model"]
    assert state["blocks.0.layer.log_dt"].dtype == torch.float32
    assert all(torch.isfinite(t).all() for t in state.values())
