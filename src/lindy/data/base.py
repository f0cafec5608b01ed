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
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from lindy import metrics
from lindy._checks import check_bool, check_count, check_fraction, check_seed  # noqa: F401 (the data modules' checks)

TASKS = ("classification", "regression", "per_step_regression", "language_modeling")


@dataclass(frozen=True)
class TaskInfo:
    """Static facts about a data set: widths, length, task type, headline metric and provenance."""

    d_input: int  # features per step; for token inputs, the vocabulary size
    d_output: int  # classes, regression targets, or vocabulary size
    length: int | None  # steps per sequence (None when it varies)
    task: str  # one of TASKS
    metric: str  # a name in lindy.metrics.METRICS
    tokens: bool = False  # x holds integer tokens (the model embeds them)
    source: str = "synthetic"  # "real", "synthetic", "regenerated" or "stand-in: <what>"
    loss: str | None = None  # a name in lindy.metrics.LOSSES; None: the task type's default

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        metrics.get_metric(self.metric)  # each raises naming the registered choices
        if self.loss is not None:
            metrics.get_loss(self.loss)


@dataclass
class DataSplits:
    train: Dataset
    val: Dataset
    test: Dataset
    info: TaskInfo


SPLITS = ("train", "val", "test")


def split_sizes(n_train, n_val, n_test) -> dict[str, int]:
    """``{"train": n_train, "val": n_val, "test": n_test}``, each checked to be a positive int."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    return {split: check_count(f"n_{split}", n) for split, n in sizes.items()}


def make_splits(sizes: dict[str, int], make: Callable[[str, int], Dataset], info: TaskInfo) -> DataSplits:
    """``DataSplits(make("train", n_train), make("val", n_val), make("test", n_test), info)``, made in
    that order."""
    return DataSplits(*(make(split, sizes[split]) for split in SPLITS), info)


def classification_info(
    d_input: int, n_classes: int, length: int | None, *, tokens: bool = False, source: str = "real"
) -> TaskInfo:
    """The ``TaskInfo`` of a classification set scored by accuracy: x (length, d_input) features, or
    (length,) tokens of a ``d_input``-word vocabulary; y () in 0..n_classes-1."""
    return TaskInfo(
        d_input=d_input,
        d_output=n_classes,
        length=length,
        task="classification",
        metric="accuracy",
        tokens=tokens,
        source=source,
    )


def require_files(what: str, expected: str, paths, *, names: bool = False) -> None:
    """Raise ``FileNotFoundError("<what> files not found: expected <expected>; missing <p>, ...")`` naming
    each of ``paths`` that is not a file (only its file name with ``names``); return if all exist."""
    missing = [Path(p).name if names else str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"{what} files not found: expected {expected}; missing {', '.join(missing)}")


def check_labels(labels, n_classes: int, where) -> None:
    """Raise ``ValueError("<where>: labels outside 0..n_classes-1 ...")`` unless every label is an integer
    class index in [0, n_classes), naming the first offending item, so that a bad file fails when it is
    read, not later inside the loss. ``labels``: (n,) array or tensor; ``where``: the file read."""
    values = np.asarray(labels)
    if values.size and values.dtype.kind not in "iu":
        raise ValueError(f"{where}: labels must be integer class indices, got {values.dtype}")
    bad = np.flatnonzero((values < 0) | (values >= n_classes)) if values.size else ()
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{where}: labels outside 0..{n_classes - 1} (the task's {n_classes} classes): {len(bad)} of "
            f"{values.size}, the first {values.flat[i]} at item {i} (min {values.min()}, max {values.max()})"
        )


class StoredSequences(Dataset):
    """Items ``(self.input(i), labels[i])`` over compact storage, decoded one item at a time.

    ``data`` (n, ...) holds one stored example a row (uint8 pixels or bytes, small-integer tokens, int16
    audio), ``labels`` (n, ...) the targets. ``input(i)`` turns row i into the model's x; here it reads
    the row as int64 tokens, subclasses decode other storage. Memory stays at the compact rows.
    """

    def __init__(self, data, labels):
        if len(data) != len(labels):
            raise ValueError(f"{len(data)} stored sequences but {len(labels)} labels")
        self.data, self.labels = data, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.input(i), self.labels[i]

    def input(self, i):
        return self.data[i].long()


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
