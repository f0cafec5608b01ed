"""What every lindy data set declares, so that the trainer needs no per-task code.

A data set builder returns ``DataSplits(train, val, test, info)``: three ``torch.utils.data.Dataset`` whose
items are ``(x, y)`` pairs, and a ``TaskInfo``. Shapes of one item by task:

=========================  =======================================  =================================
task                       x                                        y
=========================  =======================================  =================================
classification             (L, d_input) float, or (L,) long tokens  () long class index
regression                 (L, d_input) float                       (d_output,) float
per_step_regression        (L, d_input) float                       (L, d_output) float
language_modeling          (L,) long tokens                         (L,) long next tokens
=========================  =======================================  =================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

TASKS = ("classification", "regression", "per_step_regression", "language_modeling")
METRICS = ("accuracy", "mse", "rmse", "perplexity", "bpc")


@dataclass(frozen=True)
class TaskInfo:
    """Static facts about a data set: widths, length, task type, headline metric and provenance."""

    d_input: int  # features per step; for token inputs, the vocabulary size
    d_output: int  # classes, regression targets, or vocabulary size
    length: int | None  # steps per sequence (None when it varies)
    task: str  # one of TASKS
    metric: str  # one of METRICS
    tokens: bool = False  # x holds integer tokens (the model embeds them)
    source: str = "synthetic"  # "real", "synthetic", "regenerated" or "stand-in: <what>"

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")


@dataclass
class DataSplits:
    train: Dataset
    val: Dataset
    test: Dataset
    info: TaskInfo


DATASETS: dict[str, Callable[..., DataSplits]] = {}


def register_dataset(name: str):
    """Register a builder ``f(**options) -> DataSplits`` under ``name`` (used by ``data=<name>`` configs)."""

    def decorate(fn):
        if name in DATASETS and DATASETS[name] is not fn:
            raise ValueError(f"data set name {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return decorate


def build_data(name: str, **options) -> DataSplits:
    """Build the registered data set ``name`` with its options (e.g. ``root``, ``seed``)."""
    import lindy.data  # noqa: F401  (imports every data module so that they register)

    if name not in DATASETS:
        raise ValueError(f"data set must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](**options)
