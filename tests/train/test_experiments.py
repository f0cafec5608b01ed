"""Every shipped experiment composes and builds its model; LEM's runs end to end on a tiny adding task."""

import json
import math

import pytest

from lindy.data import TaskInfo
from lindy.models import build_model
from lindy.train.config import compose_config, list_experiments
from lindy.train.keys import check_known_keys
from lindy.train.loop import model_config

EXPERIMENTS = list_experiments()

# the task and input kind of each data set an experiment may use (the files are not here to build them)
TASK_OF = {
    "per_step_regression": {"fhn", "lds", "lif"},
    "regression": {"adding", "bidmc_hr", "bidmc_rr", "bidmc_spo2"},
    "language_modeling": {"ptb_char", "ptb_word", "wikitext103", "copying", "selective_copying"},
}
TOKENS = {"ptb_char", "ptb_word", "wikitext103", "copying", "selective_copying", "induction_heads"}
TOKENS |= {"associative_recall", "listops", "listops_generated", "imdb", "aan"}
METRIC = {"classification": "accuracy", "regression": "mse", "per_step_regression": "mse"}


def task_info(data_name: str) -> TaskInfo:
    task = next((t for t, names in TASK_OF.items() if data_name in names), "classification")
    return TaskInfo(
        d_input=20 if data_name in TOKENS else 2,
        d_output=20 if task == "language_modeling" else 10,  # a language model predicts its own vocabulary
        length=50,
        task=task,
        metric=METRIC.get(task, "perplexity"),
        tokens=data_name in TOKENS,
    )


def test_experiments_are_listed():
    assert {"s4d/smnist_embedded", "lem/smnist", "lem/psmnist", "lem/adding"} <= set(EXPERIMENTS)
    assert {f"lssl/{t}" for t in ("smnist", "psmnist", "scifar", "bidmc_hr", "sc10", "sc35")} <= set(
        EXPERIMENTS
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.name == experiment
    check_known_keys(cfg)  # no stray key in the experiment's files
    model = build_model(model_config(cfg), task_info(cfg.data.name))
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


def test_lssl_experiment_runs_end_to_end(tmp_path, lindy_cli):
    """The LSSL recipe (post-norm, learn=1 with its optimiser groups) trains through the real trainer."""
    run = tmp_path / "lssl"
    args = [
        "experiment=lssl/smnist",
        "data=adding",
        "data.length=24",
        "data.n_train=20",
        "data.n_val=10",
        "data.n_test=10",
        "model.d_model=8",
        "model.n_layers=2",
        "layer.d_state=4",
        "loader.batch_size=10",
        "trainer.max_epochs=1",
        "trainer.tensorboard=false",
        f"trainer.run_dir={run}",
    ]
    lindy_cli(args, check=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["experiment"] == "lssl/smnist" and summary["steps"] == 2
    assert math.isfinite(summary["test"]["mse"])
