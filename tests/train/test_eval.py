"""``lindy eval`` reads a finished run and writes nothing into it; its numbers are the summary's."""

import json
import os

import pytest

from lindy.data import TaskInfo
from lindy.train.evaluate import evaluate


def snapshot(folder):
    """Every file under ``folder``: its bytes and modification time (ns)."""
    return {
        p.relative_to(folder): (p.read_bytes(), os.stat(p).st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tiny, lindy_cli, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    lindy_cli(
        [*tiny, f"trainer.run_dir={run}", "trainer.max_epochs=1", "trainer.tensorboard=true"], check=True
    )
    return run


def test_eval_leaves_the_run_untouched_and_matches_its_summary(finished, lindy_cli):
    before = snapshot(finished)
    assert {"config.yaml", "best.pt", "last.pt", "summary.json"} <= {str(p) for p in before}
    proc = lindy_cli(["eval", str(finished)], module="lindy.cli", check=True)
    assert snapshot(finished) == before
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((finished / "summary.json").read_text())
    assert result["checkpoint"] == str(finished / "best.pt") and result["split"] == "test"
    assert {k: result[k] for k in summary["test"]} == summary["test"]  # the same numbers, exactly

    proc = lindy_cli(["eval", str(finished / "last.pt"), "--split", "val"], module="lindy.cli", check=True)
    assert snapshot(finished) == before
    assert set(json.loads(proc.stdout.strip().splitlines()[-1])) >= {"loss", "mse"}


def test_eval_of_a_missing_checkpoint_fails_cleanly(tmp_path, lindy_cli):
    proc = lindy_cli(["eval", str(tmp_path)], module="lindy.cli")
    assert proc.returncode == 2 and "no best.pt or last.pt" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_sums_over_batches_like_one_batch():
    """Batch size changes how the sums are split, not the mean loss."""
    import torch

    info = TaskInfo(d_input=2, d_output=1, length=5, task="regression", metric="mse")
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(10, 5, 2, generator=g), torch.randn(10, 1, generator=g))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))
    one = evaluate(model, data, info, batch=10, device=torch.device("cpu"))
    three = evaluate(model, data, info, batch=3, device=torch.device("cpu"))
    assert not model.training
    assert three["loss"] == pytest.approx(one["loss"], rel=1e-6) and three["mse"] == pytest.approx(one["mse"])
    with torch.no_grad():
        want = torch.nn.functional.mse_loss(model(data.tensors[0]), data.tensors[1]).item()
    assert one["loss"] == pytest.approx(want, rel=1e-6)
