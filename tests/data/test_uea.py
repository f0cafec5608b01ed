""".ts files (sktime / aeon text format) written in the real format and read back; the EigenWorms, BIDMC and
ACSF1 builders on fixture files (ACSF1 on the files aeon ships); splits checked against the references'
own procedures (scikit-learn train_test_split, torch random_split)."""

import json

import numpy as np
import pytest
import torch

from lindy.data import build_data
from lindy.data.uea import (
    aeon_data_dir,
    original_split,
    read_ts,
    sklearn_style_split,
    stack_cases,
    torch_random_split,
)


def fmt(v):
    return "?" if np.isnan(v) else repr(float(v))


def write_ts(path, cases, labels=None, targets=None, class_labels=None, header=None, problem="Toy"):
    """Write cases (list of (channels, length) arrays) as a .ts file with a header like the archives'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = cases[0].shape[0]
    lines = [
        f"# {problem}: a test fixture",
        f"@problemName {problem}",
        "@timeStamps false",
        f"@missing {'true' if any(np.isnan(c).any() for c in cases) else 'false'}",
        f"@univariate {'true' if channels == 1 else 'false'}",
    ]
    if channels > 1:
        lines.append(f"@dimensions {channels}")
    lines += ["@equalLength true", f"@seriesLength {cases[0].shape[1]}"]
    if labels is not None:
        lines.append("@classLabel true " + " ".join(class_labels))
    else:
        lines.append("@targetlabel true")
    lines += header or []
    lines.append("@data")
    for i, case in enumerate(cases):
        dims = [",".join(fmt(v) for v in dim) for dim in case]
        last = labels[i] if labels is not None else repr(float(targets[i]))
        lines.append(":".join(dims) + ":" + last)
    path.write_text("\n".join(lines) + "\n")


def make_cases(n, channels, length, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(channels, length)).round(5) for _ in range(n)]


def stack(dataset):
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


# ------------------------------------------------------------------------------------------------ reader


def test_read_ts_values_labels_and_missing(tmp_path):
    cases = make_cases(3, 2, 5, 0)
    cases[1][1, 2] = np.nan
    path = tmp_path / "Toy_TRAIN.ts"
    write_ts(path, cases, labels=["b", "a", "b"], class_labels=["a", "b"])
    ts = read_ts(path)
    assert ts.problem == "Toy" and ts.class_labels == ("a", "b") and ts.labels == ["b", "a", "b"]
    assert ts.header["dimensions"] == 2 and ts.header["serieslength"] == 5 and ts.header["missing"] is True
    for got, want in zip(ts.series, cases):
        np.testing.assert_array_equal(got, want)  # NaN where '?'
    x = stack_cases(ts)
    assert x.shape == (3, 5, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 1], cases[0][1], rtol=1e-6)


def test_read_ts_regression_and_header_spellings(tmp_path):
    path = tmp_path / "R.ts"
    path.write_text(
        "% an ARFF-style comment\n@PROBLEMNAME R\n@timestamps FALSE\n@univariate false\n@dimension 2\n"
        "@equallength true\n@classLabel false\n@TargetLabel true\n\n@data\n"
        "1,2,3:4,5,6:7.5\n  0.5, -1e-3 ,2:1,1,1:-2\n"
    )
    ts = read_ts(path)
    assert ts.labels is None and ts.targets.tolist() == [7.5, -2.0]
    np.testing.assert_array_equal(ts.series[1], [[0.5, -1e-3, 2], [1, 1, 1]])


BAD = [
    ("@problemName X\n@classLabel true a b\n1,2:a\n", ":3: expected a @header line or @data"),
    ("@problemName X\n@classLabel true a b\n", "no @data line"),
    ("@problemName X\n@classLabel true a b\n@data\n", "no cases after @data"),
    ("@classLabel true a b\n@dimensions 2\n@data\n1,2:a\n", ":4: 1 dimensions, expected 2"),
    ("@classLabel true a b\n@data\n1,x,3:a\n", r":3: dimension 1: could not convert string to float: 'x'"),
    ("@classLabel true a b\n@data\n1,,3:a\n", r":3: dimension 1: could not convert"),
    ("@classLabel true a b\n@data\n1,2:c\n", r":3: class label 'c' is not one of @classLabel \('a', 'b'\)"),
    ("@classLabel true a b\n@data\n1,2:1,2,3:a\n", ":3: dimensions of unequal lengths"),
    ("@classLabel true a b\n@data\n1,2\n", ":3: no label field"),
    ("@classLabel true a b\n@dimensions 1\n@data\n:a\n", ":4: dimension 1 has no values"),
    (
        "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n",
        ":5: 2 values, but @seriesLength 3",
    ),
    ("@missing false\n@classLabel true a\n@data\n1,?:a\n", ":4: missing values"),
    ("@targetLabel true\n@data\n1,2:high\n", ":3: target 'high' is not a number"),
    ("@classLabel true a\n@data\n1,2:a\n@data\n", ":4: header line '@data' after @data"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1),(1,2):a\n", ":3: timestamped .ts files"),
    ("@univariate maybe\n@data\n", ":1: @univariate must be true or false"),
    ("@dimensions two\n@data\n", ":1: @dimensions must be a positive integer"),
    ("@classLabel true\n@data\n", ":1: @classLabel true must list the class labels"),
    ("@classLabel true a a\n@data\n", ":1: @classLabel lists a label twice"),
    (
        "@univariate true\n@dimensions 3\n@classLabel true a\n@data\n1:a\n",
        "@univariate true but @dimensions 3",
    ),
]


@pytest.mark.parametrize("text,message", BAD)
def test_read_ts_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.ts"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_ts(path)
    assert str(path) in str(err.value)


def test_read_ts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ts: no such .ts file"):
        read_ts(tmp_path / "nope.ts")


# ------------------------------------------------------------------------------------------------ splits


def test_sklearn_style_split_is_train_test_split():
    model_selection = pytest.importorskip("sklearn.model_selection")
    for n, seeds in [(259, (1234, 1234)), (20, (0, 1)), (7949, (0, 1))]:
        a = np.arange(n)
        train, held = model_selection.train_test_split(a, test_size=0.3, random_state=seeds[0])
        val, test = model_selection.train_test_split(held, test_size=0.5, random_state=seeds[1])
        ours = sklearn_style_split(n, *seeds)
        assert all(np.array_equal(o, r) for o, r in zip(ours, (train, val, test)))
    assert [len(i) for i in sklearn_style_split(259, 1234, 1234)] == [181, 39, 39]  # LEM's EigenWorms sizes


def test_torch_random_split_is_lems_heart_rate_split():
    ds = range(7949)
    g = torch.Generator().manual_seed(123456)
    train, rest = torch.utils.data.random_split(ds, [5565, 2384], generator=g)
    test, val = torch.utils.data.random_split(
        rest, [1192, 1192], generator=torch.Generator().manual_seed(123456)
    )
    ours = torch_random_split(7949, 5565, 123456)
    assert [o.tolist() for o in ours] == [list(train), list(val), list(test)]
    with pytest.raises(ValueError, match="cannot split 5 cases"):
        torch_random_split(5, 4, 0)


def test_original_split():
    train, val, test = original_split(20, 6, 0.15, 3)
    assert (
        len(val) == 3 and sorted([*train, *val]) == list(range(20)) and test.tolist() == list(range(20, 26))
    )
    assert not np.array_equal(val, original_split(20, 6, 0.15, 4)[1])
    with pytest.raises(ValueError, match="val_fraction must be in"):
        original_split(20, 6, 1.0, 0)


# -------------------------------------------------------------------------------------------- data sets


@pytest.fixture
def worms(tmp_path):
    """EigenWorms-shaped fixture: 12 TRAIN + 8 TEST cases, 6 channels, 16 steps, labels 1..5."""
    root = tmp_path / "data"
    cases = make_cases(20, 6, 16, 1)
    labels = [str(1 + i % 5) for i in range(20)]
    for part, sl in (("TRAIN", slice(0, 12)), ("TEST", slice(12, 20))):
        write_ts(
            root / "EigenWorms" / f"EigenWorms_{part}.ts",
            cases[sl],
            labels=labels[sl],
            class_labels=["1", "2", "3", "4", "5"],
            problem="EigenWorms",
        )
    return (
        root,
        np.stack(cases).transpose(0, 2, 1),
        np.array([int(v) - 1 for v in labels]),
        tmp_path / "cache",
    )


def test_eigenworms_lem_split(worms):
    root, x, y, cache = worms
    d = build_data("eigenworms", root=str(root), cache_dir=cache)
    assert (d.info.d_input, d.info.d_output, d.info.length, d.info.task) == (6, 5, 16, "classification")
    train, val, test = sklearn_style_split(20, 1234, 1234)  # LEM: all cases (TRAIN then TEST), seed 1234
    for split, idx in zip((d.train, d.val, d.test), (train, val, test)):
        xs, ys = stack(split)
        np.testing.assert_allclose(xs.numpy(), x[idx], rtol=1e-6)
        assert ys.dtype == torch.int64 and ys.tolist() == y[idx].tolist()
    again = build_data("eigenworms", root=str(root), cache_dir=cache)  # from the cache: same tensors
    assert torch.equal(stack(again.test)[0], stack(d.test)[0])
    assert len(list(cache.glob("uea-EigenWorms-*.safetensors"))) == 1
    other = build_data("eigenworms", root=str(root), cache_dir=cache, split_seed=7)
    assert not torch.equal(stack(other.test)[1], stack(d.test)[1])


def test_eigenworms_original_split(worms):
    root, x, y, cache = worms
    d = build_data("eigenworms", root=str(root), cache_dir=cache, split="original", val_fraction=0.25)
    assert (len(d.train), len(d.val), len(d.test)) == (9, 3, 8)
    np.testing.assert_allclose(stack(d.test)[0].numpy(), x[12:], rtol=1e-6)


def test_cache_follows_file_changes(worms):
    root, x, y, cache = worms
    a = build_data("eigenworms", root=str(root), cache_dir=cache, split="original")
    path = root / "EigenWorms" / "EigenWorms_TEST.ts"
    write_ts(path, make_cases(8, 6, 16, 9), labels=["1"] * 8, class_labels=["1", "2", "3", "4", "5"])
    b = build_data("eigenworms", root=str(root), cache_dir=cache, split="original")
    assert not torch.equal(stack(a.test)[0], stack(b.test)[0]) and stack(b.test)[1].tolist() == [0] * 8


def bidmc_fixture(root, target, n_train=14, n_test=6, channels=2, length=12, nan=False):
    problem = f"BIDMC32{target}"
    cases = make_cases(n_train + n_test, channels, length, 2)
    if nan:
        cases[0][0, 0] = np.nan
    targets = np.random.default_rng(3).uniform(40, 120, n_train + n_test).round(3)
    for part, sl in (("TRAIN", slice(0, n_train)), ("TEST", slice(n_train, None))):
        write_ts(root / problem / f"{problem}_{part}.ts", cases[sl], targets=targets[sl], problem=problem)
    return np.stack(cases).transpose(0, 2, 1), targets


@pytest.mark.parametrize("name,target", [("bidmc_hr", "HR"), ("bidmc_rr", "RR"), ("bidmc_spo2", "SpO2")])
def test_bidmc_lem_split(tmp_path, name, target):
    x, t = bidmc_fixture(tmp_path, target)
    d = build_data(name, root=str(tmp_path), cache_dir=tmp_path / "cache")
    assert (d.info.d_input, d.info.d_output, d.info.task, d.info.metric) == (2, 1, "regression", "rmse")
    # LEM: random_split(all, [n_TRAIN, n_TEST], seed 123456), then the rest into [test, val] halves
    train, val, test = torch_random_split(20, 14, 123456)
    assert (len(train), len(val), len(test)) == (14, 3, 3)
    for split, idx in zip((d.train, d.val, d.test), (train, val, test)):
        xs, ys = stack(split)
        assert ys.shape == (len(idx), 1) and ys.dtype == torch.float32
        np.testing.assert_allclose(ys[:, 0].numpy(), t[idx], rtol=1e-6)
        np.testing.assert_allclose(xs.numpy(), x[idx], rtol=1e-6)


def test_bidmc_s4_and_original_splits(tmp_path):
    x, t = bidmc_fixture(tmp_path, "HR")
    s4 = build_data("bidmc_hr", root=str(tmp_path), split="s4", cache=False)
    train, val, test = sklearn_style_split(20, 0, 1)
    np.testing.assert_allclose(stack(s4.val)[1][:, 0].numpy(), t[val], rtol=1e-6)
    np.testing.assert_allclose(stack(s4.test)[1][:, 0].numpy(), t[test], rtol=1e-6)
    orig = build_data("bidmc_hr", root=str(tmp_path), split="original", cache=False)
    np.testing.assert_allclose(stack(orig.test)[1][:, 0].numpy(), t[14:], rtol=1e-6)
    with pytest.raises(ValueError, match=r"split must be one of \['lem', 's4', 'original'\], got 'x'"):
        build_data("bidmc_hr", root=str(tmp_path), split="x", cache=False)


def test_layout_errors(tmp_path, worms):
    root, _, _, _ = worms
    with pytest.raises(ValueError, match="data.root is not set.*EigenWorms/EigenWorms_TRAIN.ts"):
        build_data("eigenworms")
    with pytest.raises(
        FileNotFoundError, match=r"EigenWorms_\{TRAIN,TEST\}.ts .*missing EigenWorms_TRAIN.ts"
    ):
        build_data("eigenworms", root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="split must be one of \\['lem', 'original'\\]"):
        build_data("eigenworms", root=str(root), split="s4", cache=False)
    bidmc_fixture(tmp_path / "b3", "HR", channels=3)
    with pytest.raises(ValueError, match="expected 2 channels per step, the files have 3"):
        build_data("bidmc_hr", root=str(tmp_path / "b3"), cache=False)
    bidmc_fixture(tmp_path / "nan", "HR", nan=True)
    with pytest.raises(ValueError, match="missing values"):
        build_data("bidmc_hr", root=str(tmp_path / "nan"), cache=False)
    write_ts(
        tmp_path / "c4" / "EigenWorms" / "EigenWorms_TRAIN.ts",
        make_cases(2, 6, 4, 0),
        ["a", "b"],
        class_labels="ab",
    )
    write_ts(
        tmp_path / "c4" / "EigenWorms" / "EigenWorms_TEST.ts",
        make_cases(2, 6, 4, 0),
        ["a", "b"],
        class_labels="ab",
    )
    with pytest.raises(ValueError, match="expected 5 classes, @classLabel lists 2"):
        build_data("eigenworms", root=str(tmp_path / "c4"), split="original", val_fraction=0.5, cache=False)
    # regression files where a classification set is expected
    for part in ("TRAIN", "TEST"):
        write_ts(
            tmp_path / "r" / "EigenWorms" / f"EigenWorms_{part}.ts", make_cases(4, 6, 4, 0), targets=[1.0] * 4
        )
    with pytest.raises(ValueError, match="EigenWorms_TRAIN.ts: no class labels"):
        build_data("eigenworms", root=str(tmp_path / "r"), cache=False)


# ---------------------------------------------------------------------------------------- ACSF1 (aeon)


def _acsf1_files():
    pytest.importorskip("aeon", reason="acsf1 reads the .ts files of the aeon package")
    folder = aeon_data_dir() / "ACSF1"
    if not (folder / "ACSF1_TRAIN.ts").is_file():
        pytest.skip("the installed aeon has no ACSF1 files")
    return folder


def test_acsf1_offline_from_aeon(tmp_path):
    folder = _acsf1_files()
    d = build_data("acsf1", cache_dir=tmp_path)
    assert (d.info.d_input, d.info.d_output, d.info.length) == (1, 10, 1460)
    assert (len(d.train), len(d.val), len(d.test)) == (85, 15, 100)
    xt, yt = stack(d.test)
    assert torch.bincount(yt, minlength=10).tolist() == [10] * 10
    # the first TEST case, parsed here with plain string handling
    lines = (folder / "ACSF1_TEST.ts").read_text().splitlines()
    first = lines[[ln.strip().lower() for ln in lines].index("@data") + 1]
    *values, label = first.strip().split(",")[:-1] + first.strip().split(",")[-1].split(":")
    np.testing.assert_allclose(xt[0, :, 0].numpy(), np.array(values, dtype=float), rtol=1e-6)
    assert yt[0].item() == int(label)
    lem = build_data("acsf1", cache_dir=tmp_path, split="lem")
    assert (len(lem.train), len(lem.val), len(lem.test)) == (140, 30, 30)


@pytest.mark.slow
def test_acsf1_matches_aeons_loader(tmp_path):
    _acsf1_files()
    from aeon.datasets import load_classification

    d = build_data("acsf1", cache_dir=tmp_path)
    x, y = load_classification("ACSF1", split="test")
    xt, yt = stack(d.test)
    np.testing.assert_allclose(xt[:, :, 0].numpy(), x[:, 0, :], rtol=1e-6, atol=1e-6)
    assert [str(v) for v in yt.tolist()] == list(y)


# ------------------------------------------------------------------------------------- LEM experiments


@pytest.mark.slow
@pytest.mark.parametrize("experiment,metric", [("lem/eigenworms", "accuracy"), ("lem/heart_rate", "rmse")])
def test_lem_experiment_runs(worms, tmp_path, experiment, metric, lindy_cli):
    root, _, _, _ = worms
    bidmc_fixture(root, "HR")
    run = tmp_path / "run"
    args = [
        f"experiment={experiment}",
        f"data.root={root}",
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
    assert summary["experiment"] == experiment and summary["steps"] == 2 and summary["metric"] == metric
    assert np.isfinite(summary["test"][metric])
