"""CIFAR-10 as sequences, read from the python batches ``<root>/cifar-10-batches-py/`` (the unpacked
``cifar-10-python.tar.gz``: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, each a pickled dict
whose ``b"data"`` is uint8 (10000, 3072), one image per row as three row-major 32x32 planes R, G, B, and
whose ``b"labels"`` lists 10000 class indices 0..9).

- ``scifar`` (S4's sequential CIFAR): the 1024 pixels in raster order, x (1024, 3) RGB, each channel
  normalised as S4 does, ``(v / 255 - mean) / std`` with mean (0.4914, 0.4822, 0.4465) and std
  (0.247, 0.243, 0.261); ``grayscale=True`` gives x (1024, 1) with mean 122.6/255 and std 61/255.
  Validation: ``int(0.9 n)`` / rest of the 50,000 training images (45,000 / 5,000), drawn exactly as S4's
  ``torch.utils.data.random_split`` with ``torch.Generator().manual_seed(split_seed)`` (S4: seed 42).
- ``lra_image`` (LRA "Image"): the grayscale version, 1024 steps of 1 feature normalised with S4's LRA
  statistics (mean 122.6/255, std 61/255), or with ``tokens=True`` the raw 8-bit intensities as tokens
  (x (1024,) long in 0..255, vocabulary 256, as LRA's own pipeline feeds them). Same 45,000 / 5,000 split.
  Grayscale is PIL's ``convert("L")`` (which torchvision's ``Grayscale`` calls):
  ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16``, i.e. ITU-R 601-2 luma rounded to an integer.
- ``ncifar`` (LEM's noisy CIFAR, Rusch & Mishra 2021): each image row is one step of 96 features, ordered as
  LEM's ``images.permute(0, 2, 1, 3).reshape(B, 32, 96)`` on a (B, 3, 32, 32) tensor: feature
  ``32 c + w`` holds channel c (R, G, B) at column w, values ``v / 255`` in [0, 1] (torchvision's
  ``ToTensor``, no further normalisation). Steps 32 .. length-1 (968 steps for LEM's T = 1000) are N(0, 1)
  noise. As in LEM's script, the noise is drawn ONCE, (length - 32, 96), and the same noise block is
  appended to every image of every split (the task is to carry the 32 informative steps across 968
  distracting ones, not to average noise away). LEM draws it from the global RNG after building its model,
  so its values cannot be reproduced; here it comes from ``torch.Generator().manual_seed(noise_seed)``.
  Validation: LEM holds out 2,000 of the 50,000 training images (``random_split`` [48000, 2000] with an
  unseeded generator); here ``n_val`` images drawn with ``split_seed``.

The decoded uint8 images are cached with ``cached_tensors`` (one entry shared by the three data sets);
items are made per access, so memory stays at the uint8 images (ncifar's (1000, 96) items would be 23 GB
if materialised).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
import torch

from lindy._checks import check_count
from lindy.data.base import (
    DataSplits,
    StoredSequences,
    check_bool,
    check_fraction,
    check_labels,
    check_seed,
    classification_info,
    register_dataset,
    require_files,
)
from lindy.data.cache import cached_tensors

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
LAYOUT = f"{FOLDER}/{{data_batch_1..data_batch_5, test_batch}} (the unpacked cifar-10-python.tar.gz)"
BATCH_FORMAT = "a pickled dict with b'data' uint8 (n, 3072) and b'labels' (n class indices 0..9)"

RGB_MEAN = (0.4914, 0.4822, 0.4465)  # S4's CIFAR normalisation (src/dataloaders/basic.py)
RGB_STD = (0.247, 0.243, 0.261)
GRAY_MEAN = 122.6 / 255.0  # S4's grayscale / LRA-Image normalisation
GRAY_STD = 61.0 / 255.0
CACHE_VERSION = 1

# the only globals a CIFAR batch may name: numpy's array reconstructors (Python 2 cPickle and numpy 2's
# protocol 2/4/5 spellings) and the bytes codec of protocol-2 pickles. Anything else is refused, so that a
# tampered file cannot run code when it is read.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")
        return super().find_class(module, name)


def _field(batch: dict, key: str):
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise KeyError(key)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch -> images (n, 3, 32, 32) uint8 (channels R, G, B) and labels (n,) int64.

    Row i of ``b"data"`` is ``[R plane, G plane, B plane]``, each 1024 values in row-major order, so
    ``data.reshape(n, 3, 32, 32)[i, c, h, w]`` is channel c at row h, column w.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001  (truncated, not a pickle, refused global, ...)
        raise ValueError(
            f"{path}: not a readable CIFAR-10 python batch ({err}); expected {BATCH_FORMAT}"
        ) from err
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: holds a {type(batch).__name__}, expected {BATCH_FORMAT}")
    try:
        data, labels = _field(batch, "data"), _field(batch, "labels")
    except KeyError as err:
        raise ValueError(f"{path}: no {err.args[0]!r} entry; expected {BATCH_FORMAT}") from None
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' is {data.dtype} {data.shape}, expected {BATCH_FORMAT}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: b'labels' are not integers ({err}); expected {BATCH_FORMAT}") from None
    if labels.shape != (len(data),):
        raise ValueError(
            f"{path}: {len(data)} images but labels of shape {labels.shape}; expected {BATCH_FORMAT}"
        )
    check_labels(labels, 10, path)
    return data.reshape(-1, 3, 32, 32), labels


def _folder(root) -> Path:
    if root is None:
        raise ValueError(
            f"data.root is not set: point it at the folder holding {FOLDER}/ "
            f"(e.g. data.root=/data for /data/{FOLDER}/data_batch_1)"
        )
    folder = Path(root).expanduser() / FOLDER
    files = [folder / n for n in (*TRAIN_BATCHES, TEST_BATCH)]
    require_files("CIFAR-10", f"{Path(root).expanduser()}/{LAYOUT}", files, names=True)
    return folder


def load_cifar10(root, cache: bool = True, cache_dir=None) -> dict[str, torch.Tensor]:
    """All of CIFAR-10: ``train_x`` (50000, 3, 32, 32) uint8, ``train_y`` (50000,) int64 (batches 1..5 in
    order), ``test_x`` (10000, 3, 32, 32), ``test_y``; cached under ``cache_dir`` (``lindy.data.cache``)."""
    folder = _folder(root)
    sources = [folder / n for n in (*TRAIN_BATCHES, TEST_BATCH)]

    def build():
        parts = [read_cifar_batch(folder / n) for n in TRAIN_BATCHES]
        test_x, test_y = read_cifar_batch(folder / TEST_BATCH)
        return {
            "train_x": torch.from_numpy(np.concatenate([p[0] for p in parts])),
            "train_y": torch.from_numpy(np.concatenate([p[1] for p in parts])),
            "test_x": torch.from_numpy(np.ascontiguousarray(test_x)),
            "test_y": torch.from_numpy(test_y),
        }

    where = {"cache_dir": cache_dir, "root": root, "sources": sources, "enabled": cache}
    return cached_tensors("cifar10", {}, CACHE_VERSION, build, **where)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) uint8 RGB -> (..., H, W) uint8 luma, exactly PIL's ``convert("L")``:
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16`` (weights 0.299, 0.587, 0.114 in 16-bit fixed point)."""
    rgb = images.to(torch.int64)
    luma = 19595 * rgb[..., 0, :, :] + 38470 * rgb[..., 1, :, :] + 7471 * rgb[..., 2, :, :] + 32768
    return (luma >> 16).to(torch.uint8)


def random_split_indices(n: int, sizes: tuple[int, ...], seed: int) -> list[torch.Tensor]:
    """Index sets of ``torch.utils.data.random_split(range(n), sizes, torch.Generator().manual_seed(seed))``:
    one ``randperm(n)`` cut into consecutive pieces of the given sizes."""
    if sum(sizes) != n or min(sizes) < 0:
        raise ValueError(f"split sizes {sizes} must be >= 0 and add up to {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return list(torch.split(perm, list(sizes)))


class PixelSequences(StoredSequences):
    """Images as pixel sequences, built per item from uint8 images.

    images (n, C, H, W) uint8, labels (n,). Item: x (H*W, C) float32 ``(v / 255 - mean[c]) / std[c]`` in
    raster order (step ``h W + w``), or with ``tokens=True`` (C must be 1) x (H*W,) int64 ``v``; y () int64.
    """

    def __init__(self, images, labels, mean=None, std=None, tokens: bool = False):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"images (n, C, H, W) and labels (n,) expected, got {images.shape}, {labels.shape}"
            )
        if tokens and images.shape[1] != 1:
            raise ValueError(f"tokens need one channel, got {images.shape[1]}")
        super().__init__(images, labels)
        self.tokens = tokens
        c = images.shape[1]
        self.mean = torch.as_tensor(mean if mean is not None else [0.0] * c, dtype=torch.float32).reshape(c)
        self.std = torch.as_tensor(std if std is not None else [1.0] * c, dtype=torch.float32).reshape(c)

    @property
    def images(self) -> torch.Tensor:
        return self.data

    def input(self, i):
        img = self.data[i]
        if self.tokens:
            return img.reshape(-1).to(torch.int64)
        x = img.reshape(img.shape[0], -1).t().to(torch.float32) / 255.0
        return (x - self.mean) / self.std


class NoisyRowSequences(StoredSequences):
    """LEM's noisy CIFAR items: 32 image rows of 96 features, then the shared noise block.

    images (n, 3, 32, 32) uint8, labels (n,), noise (T - 32, 96) float32. Item: x (T, 96) float32 with
    ``x[h, 32 c + w] = images[i, c, h, w] / 255`` for h < 32 and ``x[32:] = noise``; y () int64.
    """

    def __init__(self, images, labels, noise):
        if images.shape[1:] != (3, 32, 32) or noise.ndim != 2 or noise.shape[1] != 96:
            raise ValueError(
                f"images (n, 3, 32, 32) and noise (L, 96) expected, got {images.shape}, {noise.shape}"
            )
        super().__init__(images, labels)
        self.noise = noise

    @property
    def images(self) -> torch.Tensor:
        return self.data

    def input(self, i):
        rows = self.data[i].permute(1, 0, 2).reshape(32, 96).to(torch.float32) / 255.0
        return torch.cat([rows, self.noise])


def _s4_split(n: int, val_fraction: float, split_seed: int):
    check_fraction("val_fraction", val_fraction)
    n_train = int(n * (1.0 - val_fraction))
    if n_train == 0 or n_train == n:
        raise ValueError(f"val_fraction={val_fraction} leaves an empty split of {n} training images")
    return random_split_indices(n, (n_train, n - n_train), split_seed)


def _splits(make, images, labels, test_images, test_labels, train_idx, val_idx, info) -> DataSplits:
    """``make(images, labels)`` of the training images at ``train_idx``, at ``val_idx``, and of the test
    images: the train / val / test splits."""
    return DataSplits(
        make(images[train_idx], labels[train_idx]),
        make(images[val_idx], labels[val_idx]),
        make(test_images, test_labels),
        info,
    )


def _check_options(cache, split_seed, val_fraction=None, **flags) -> None:
    """Every option's type and range, before any file is read."""
    for name, value in {"cache": cache, **flags}.items():
        check_bool(name, value)
    check_seed("split_seed", split_seed)
    if val_fraction is not None:
        check_fraction("val_fraction", val_fraction)


def _pixel_splits(root, grayscale, tokens, val_fraction, split_seed, cache, cache_dir) -> DataSplits:
    """scifar / lra_image: raster-order pixels (RGB, or grayscale normalised or as tokens), S4's split."""
    _check_options(cache, split_seed, val_fraction=val_fraction, grayscale=grayscale, tokens=tokens)
    d = load_cifar10(root, cache, cache_dir)
    train_idx, val_idx = _s4_split(len(d["train_x"]), val_fraction, split_seed)
    train_x, test_x = d["train_x"], d["test_x"]
    if grayscale:
        train_x, test_x = (to_grayscale(x).unsqueeze(1) for x in (train_x, test_x))
    if tokens:
        opts = {"tokens": True}
    elif grayscale:
        opts = {"mean": [GRAY_MEAN], "std": [GRAY_STD]}
    else:
        opts = {"mean": list(RGB_MEAN), "std": list(RGB_STD)}
    info = classification_info(256 if tokens else 1 if grayscale else 3, 10, 1024, tokens=tokens)
    make = functools.partial(PixelSequences, **opts)
    return _splits(make, train_x, d["train_y"], test_x, d["test_y"], train_idx, val_idx, info)


@register_dataset("scifar")
def scifar(
    root=None,
    grayscale: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 42,
    cache: bool = True,
    cache_dir=None,
) -> DataSplits:
    """Sequential CIFAR-10: x (1024, 3) normalised RGB (or (1024, 1) with ``grayscale``), y () class."""
    return _pixel_splits(root, grayscale, False, val_fraction, split_seed, cache, cache_dir)


@register_dataset("lra_image")
def lra_image(
    root=None,
    tokens: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 42,
    cache: bool = True,
    cache_dir=None,
) -> DataSplits:
    """LRA-Image: grayscale CIFAR-10, x (1024, 1) normalised (S4) or (1024,) tokens 0..255 (LRA)."""
    return _pixel_splits(root, True, tokens, val_fraction, split_seed, cache, cache_dir)


@register_dataset("ncifar")
def ncifar(
    root=None,
    length: int = 1000,
    n_val: int = 2000,
    split_seed: int = 0,
    noise_seed: int = 0,
    cache: bool = True,
    cache_dir=None,
) -> DataSplits:
    """LEM's noisy CIFAR-10: x (length, 96), 32 image rows then ``length - 32`` steps of shared N(0, 1)
    noise; y () class. Train/validation: the 50,000 training images less / only ``n_val`` of them."""
    check_count("length", length)
    if length < 32:
        raise ValueError(f"length must be >= 32 (the 32 image rows come first), got {length}")
    check_count("n_val", n_val)
    check_seed("noise_seed", noise_seed)
    _check_options(cache, split_seed)
    d = load_cifar10(root, cache, cache_dir)
    n = len(d["train_x"])
    if not 0 < int(n_val) < n:
        raise ValueError(f"n_val must be in 1..{n - 1} (there are {n} training images), got {n_val}")
    train_idx, val_idx = random_split_indices(n, (n - int(n_val), int(n_val)), split_seed)
    noise = torch.randn(int(length) - 32, 96, generator=torch.Generator().manual_seed(int(noise_seed)))
    info = classification_info(
        96, 10, int(length), source="real (CIFAR-10 rows + synthetic noise, LEM's noisy CIFAR)"
    )
    make = functools.partial(NoisyRowSequences, noise=noise)
    return _splits(make, d["train_x"], d["train_y"], d["test_x"], d["test_y"], train_idx, val_idx, info)
