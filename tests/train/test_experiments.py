"""Every shipped experiment composes and builds its model; LEM's runs end to end on a tiny adding task."""

import json
import math

import pytest

from lindy.data import TaskInfo
from lindy.models import build_model
from lindy.train.config import compose_config, list_experiments
from lindy.train.loop import model_config

EXPERIMENTS = list_experiments()


def test_experiments_are_listed():
    assert {"s4d/smnist_embedded", "lem/smnist", "lem/psmnist", "lem/adding"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.name == experiment
    info = TaskInfo(d_input=2, d_output=10, length=50, task="classification", metric="accuracy")
    model = build_model(model_config(cfg), info)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_lem_adding_runs_end_to_end(tmp_path, lindy_cli):
    run = tmp_path / "lem"
    args = [
        "experiment=lem/adding",
        "data.length=30",
        "data.n_train=40",
        "data.n_val=20",
        "data.n_test=20",
        "model.d_model=8",
        "loader.batch_size=10",
        "trainer.max_epochs=2",
        "trainer.tensorboard=false",
        f"trainer.run_dir={run}",
    ]
    lindy_cli(args, check=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["experiment"] == "lem/adding" and summary["steps"] == 8
    assert math.isfinite(summary["test"]["mse"])
