"""CIFAR-10 python batches written in the real format (pickled dicts) and read back as scifar / lra_image /
ncifar; layouts checked against the reference transforms (S4's raster order and split, LEM's rows)."""

import json
import pickle

import numpy as np
import pytest
import torch

from lindy.data import build_data
from lindy.data.cifar import (
    GRAY_MEAN,
    GRAY_STD,
    RGB_MEAN,
    RGB_STD,
    load_cifar10,
    random_split_indices,
    read_cifar_batch,
    to_grayscale,
)

PER_BATCH = 4  # images per fake batch: 20 training images, 4 test images


def write_cifar(root, per_batch=PER_BATCH, seed=0, protocol=2):
    """Fake ``cifar-10-batches-py`` under root; returns (train data (n, 3072), labels, test data, labels)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * per_batch,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        out[name] = (data, np.array(labels))
    train = [out[f"data_batch_{i}"] for i in range(1, 6)]
    return (
        np.concatenate([d for d, _ in train]),
        np.concatenate([y for _, y in train]),
        *out["test_batch"],
    )


@pytest.fixture
def cifar(tmp_path):
    root = tmp_path / "data"
    arrays = write_cifar(root)
    return root, arrays, tmp_path / "cache"


def stack(dataset):
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_read_batch_planes(tmp_path, protocol):
    train, _, _, _ = write_cifar(tmp_path, protocol=protocol)
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert images.shape == (PER_BATCH, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    for c, h, w in [(0, 0, 0), (0, 5, 7), (1, 31, 2), (2, 17, 31)]:
        assert images[1, c, h, w] == train[1, c * 1024 + h * 32 + w]


def test_scifar_values_and_s4_split(cifar):
    root, (train, train_y, test, test_y), cache = cifar
    d = build_data("scifar", root=str(root), cache_dir=cache)
    assert d.info.d_input == 3 and d.info.length == 1024 and d.info.d_output == 10
    n = len(train)
    assert (len(d.train), len(d.val), len(d.test)) == (int(n * 0.9), n - int(n * 0.9), len(test))
    # the split is exactly S4's torch.utils.data.random_split with seed 42
    ref_train, ref_val = torch.utils.data.random_split(range(n), [18, 2], torch.Generator().manual_seed(42))
    x, y = stack(d.train)
    assert torch.equal(y, torch.as_tensor(train_y[list(ref_train)]))
    img = train[list(ref_train)].reshape(-1, 3, 32, 32).astype(np.float64) / 255
    for c in range(3):
        want = (img[:, c].reshape(-1, 1024) - RGB_MEAN[c]) / RGB_STD[c]
        np.testing.assert_allclose(x[:, :, c].numpy(), want, rtol=1e-5, atol=1e-5)
    _, yv = stack(d.val)
    assert torch.equal(yv, torch.as_tensor(train_y[list(ref_val)]))
    xt, yt = stack(d.test)
    assert torch.equal(yt, torch.as_tensor(test_y)) and xt.shape == (len(test), 1024, 3)


def test_split_seed_changes_split(cifar):
    root, _, cache = cifar
    a = stack(build_data("scifar", root=str(root), cache_dir=cache, split_seed=1).val)[0]
    b = stack(build_data("scifar", root=str(root), cache_dir=cache, split_seed=1).val)[0]
    c = stack(build_data("scifar", root=str(root), cache_dir=cache, split_seed=2).val)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_split_indices_is_torchs():
    for n, sizes, seed in [(50, (45, 5), 42), (7, (3, 4), 0)]:
        ref = torch.utils.data.random_split(range(n), sizes, torch.Generator().manual_seed(seed))
        ours = random_split_indices(n, sizes, seed)
        assert [list(r) for r in ref] == [i.tolist() for i in ours]
    with pytest.raises(ValueError, match="add up to 10"):
        random_split_indices(10, (3, 4), 0)


def test_grayscale_is_pils_convert_L():
    Image = pytest.importorskip("PIL.Image")
    rgb = torch.randint(0, 256, (3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    rgb[:, 0, :4] = torch.tensor([[0, 255, 0, 255], [0, 255, 255, 0], [0, 255, 0, 255]], dtype=torch.uint8)
    pil = np.asarray(Image.fromarray(rgb.permute(1, 2, 0).numpy(), "RGB").convert("L"))
    assert np.array_equal(to_grayscale(rgb).numpy(), pil)


def test_scifar_grayscale_and_lra_image(cifar):
    root, (train, _, test, _), cache = cifar
    gray = to_grayscale(torch.from_numpy(test.reshape(-1, 3, 32, 32))).reshape(len(test), 1024)
    g = build_data("scifar", root=str(root), cache_dir=cache, grayscale=True)
    assert g.info.d_input == 1
    xg = stack(g.test)[0]
    assert xg.shape == (len(test), 1024, 1)
    torch.testing.assert_close(xg[..., 0], (gray.float() / 255 - GRAY_MEAN) / GRAY_STD)
    lra = build_data("lra_image", root=str(root), cache_dir=cache)
    torch.testing.assert_close(stack(lra.test)[0], xg)
    assert len(lra.train) == len(g.train)
    tok = build_data("lra_image", root=str(root), cache_dir=cache, tokens=True)
    assert tok.info.tokens and tok.info.d_input == 256
    xt = stack(tok.test)[0]
    assert xt.dtype == torch.int64 and xt.shape == (len(test), 1024) and torch.equal(xt, gray.long())


def test_ncifar_rows_and_shared_noise(cifar):
    root, (train, train_y, test, test_y), cache = cifar
    d = build_data("ncifar", root=str(root), cache_dir=cache, n_val=5)
    assert (d.info.d_input, d.info.length, d.info.d_output) == (96, 1000, 10)
    assert (len(d.train), len(d.val), len(d.test)) == (15, 5, len(test))
    xt, yt = stack(d.test)
    assert xt.shape == (len(test), 1000, 96) and torch.equal(yt, torch.as_tensor(test_y))
    # the reference's own transform: ToTensor (B, 3, 32, 32) / 255, permute(0, 2, 1, 3), reshape(B, 32, 96)
    images = torch.from_numpy(test.reshape(-1, 3, 32, 32)).float() / 255
    torch.testing.assert_close(xt[:, :32], images.permute(0, 2, 1, 3).reshape(len(test), 32, 96))
    assert xt[0, 0, 32 * 2 + 5] == test[0, 2 * 1024 + 0 * 32 + 5] / 255.0  # blue, row 0, column 5
    # one noise block (968, 96) of N(0, 1), the same for every image of every split
    noise = xt[0, 32:]
    xs = [stack(s)[0] for s in (d.train, d.val)]
    assert all(torch.equal(x[i, 32:], noise) for x in [xt, *xs] for i in range(len(x)))
    assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02
    other = build_data("ncifar", root=str(root), cache_dir=cache, n_val=5, noise_seed=1)
    assert not torch.equal(other.test[0][0][32:], noise)
    assert torch.equal(build_data("ncifar", root=str(root), cache_dir=cache, n_val=5).test[0][0], xt[0])
    short = build_data("ncifar", root=str(root), cache_dir=cache, n_val=5, length=40)
    assert short.test[0][0].shape == (40, 96) and short.info.length == 40


def test_cache_file_is_used(cifar):
    root, _, cache = cifar
    a = load_cifar10(root, cache_dir=cache)
    files = list(cache.glob("cifar10-*.safetensors"))
    assert len(files) == 1
    b = load_cifar10(root, cache_dir=cache)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["train_x"].shape == (5 * PER_BATCH, 3, 32, 32) and a["train_y"].dtype == torch.int64


def test_errors(tmp_path, cifar):
    root, _, cache = cifar
    with pytest.raises(ValueError, match="data.root is not set.*cifar-10-batches-py"):
        build_data("scifar")
    with pytest.raises(
        FileNotFoundError, match=r"cifar-10-batches-py/\{data_batch_1..data_batch_5, test_batch\}"
    ):
        build_data("scifar", root=str(tmp_path / "nowhere"))
    folder = root / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3"):
        build_data("scifar", root=str(root), cache=False)
    for bad in ("val_fraction=0", "val_fraction=1.5"):
        key, value = bad.split("=")
        write_cifar(root)
        with pytest.raises(ValueError, match="val_fraction must be in"):
            build_data("scifar", root=str(root), cache=False, **{key: float(value)})
    with pytest.raises(ValueError, match="length must be >= 32"):
        build_data("ncifar", root=str(root), cache=False, length=10)
    with pytest.raises(ValueError, match="n_val must be in 1..19"):
        build_data("ncifar", root=str(root), cache=False, n_val=20)


def _bad_batch(path, payload: bytes):
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=str(path.name)) as err:
        read_cifar_batch(path)
    return str(err.value)


def test_corrupt_batches(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    good = path.read_bytes()
    assert "not a readable CIFAR-10 python batch" in _bad_batch(path, good[: len(good) // 2])  # truncated
    assert "not a readable" in _bad_batch(path, b"hello, not a pickle")
    assert "holds a list" in _bad_batch(path, pickle.dumps([1, 2]))
    assert "no 'labels' entry" in _bad_batch(path, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    msg = _bad_batch(path, pickle.dumps({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}))
    assert "(2, 1024)" in msg and "uint8 (n, 3072)" in msg
    msg = _bad_batch(path, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    assert "2 images but labels of shape (1,)" in msg
    assert "labels outside 0..9" in _bad_batch(
        path, pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    )


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_tampered_pickle_runs_no_code(tmp_path, capsys):
    path = tmp_path / "data_batch_1"
    msg = _bad_batch(path, pickle.dumps({b"data": _Evil(), b"labels": []}))
    assert "refusing to load builtins.print" in msg
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.slow
def test_lem_ncifar_experiment_runs(cifar, tmp_path, lindy_cli):
    root, _, _ = cifar
    run = tmp_path / "run"
    args = [
        "experiment=lem/ncifar",
        f"data.root={root}",
        "data.n_val=4",
        "data.length=100",
        "model.d_model=8",
        "loader.batch_size=4",
        "loader.eval_batch_size=8",
        "trainer.max_steps=2",
        "trainer.tensorboard=false",
        "trainer.threads=1",
        f"trainer.run_dir={run}",
    ]
    lindy_cli(args, check=True)  # python -m lindy.train ARGS, in a subprocess
    summary = json.loads((run / "summary.json").read_text())
    assert summary["experiment"] == "lem/ncifar" and summary["steps"] == 2
    assert 0.0 <= summary["test"]["accuracy"] <= 1.0
