"""UEA / UCR / Monash time-series archives read from their ``.ts`` text files (sktime / aeon format).

A ``.ts`` file is a header of ``@key value`` lines (``@problemName``, ``@timeStamps``, ``@missing``,
``@univariate``, ``@dimension(s)``, ``@equalLength``, ``@seriesLength``, ``@classLabel true <labels>`` or
``false``, ``@targetLabel true`` for regression), comment lines starting with ``#`` (or ``%``), then
``@data`` and one case per line: the dimensions separated by ``:``, the values of a dimension by ``,``,
``?`` for a missing value, and a last field holding the class label (classification) or the real target
(regression). ``read_ts`` parses it (keys are case-insensitive; timestamped files are not supported) and
names the file and line of anything malformed.

Data sets (x (L, channels) float32, raw values: neither LEM nor S4 normalises these sets):

- ``eigenworms``: ``<root>/EigenWorms/EigenWorms_{TRAIN,TEST}.ts``, 6 channels, 17,984 steps, 5 classes
  (class index = position in the ``@classLabel`` list, which for EigenWorms, labels 1..5, equals LEM's
  ``LabelEncoder``). ``split="lem"``: LEM's split of all 259 cases (TRAIN then TEST): scikit-learn's
  ``train_test_split(test_size=0.3, random_state=1234)``, then the held-out 30% split again with
  ``test_size=0.5, random_state=1234`` into validation (first part) and test; 181 / 39 / 39 cases.
  Reproduced without scikit-learn (``sklearn_style_split``), index for index.
- ``bidmc_hr`` / ``bidmc_rr`` / ``bidmc_spo2``: Monash regression files
  ``<root>/BIDMC32{HR,RR,SpO2}/BIDMC32{HR,RR,SpO2}_{TRAIN,TEST}.ts``, 2 channels (PPG, ECG), 4,000 steps,
  target (1,) float (heart rate in beats/min, respiratory rate in breaths/min, SpO2 in %), metric RMSE.
  ``split="lem"`` (LEM's heart-rate script): all 7,949 cases, TRAIN then TEST, ``torch.utils.data.
  random_split`` into [n_TRAIN, n_TEST] = [5565, 2384] with ``torch.Generator().manual_seed(123456)``,
  then the 2,384 into test, validation [1192, 1192] with a fresh generator of the same seed.
  ``split="s4"`` (S4's ``prepare/bidmc``): scikit-learn ``train_test_split(test_size=0.3,
  random_state=seed)`` then ``(test_size=0.5, random_state=seed + 1)`` into validation, test; seed 0.
- ``acsf1``: the UCR ACSF1 set (1,460 steps, 1 channel, 10 appliance classes, 100 + 100 cases) that the
  ``aeon`` package ships as ``aeon/datasets/data/ACSF1/ACSF1_{TRAIN,TEST}.ts``; read with ``read_ts``
  (aeon's own loaders are not used), so it works offline. ``root`` may point elsewhere
  (``<root>/ACSF1/ACSF1_TRAIN.ts``).

``split="original"`` (every set): the TEST file is the test set; ``val_fraction`` of the TRAIN cases,
drawn with ``split_seed``, is the validation set. Parsed tensors are cached with ``cached_tensors``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lindy._checks import check_choice
from lindy.data.base import (
    DataSplits,
    TaskInfo,
    check_bool,
    check_fraction,
    check_seed,
    register_dataset,
    require_files,
)
from lindy.data.cache import cached_tensors

CACHE_VERSION = 1
BOOL_KEYS = ("timestamps", "missing", "univariate", "equallength")


@dataclass
class TsData:
    """A parsed ``.ts`` file. ``series[i]``: (channels, length_i) float64 (NaN where ``?``); ``labels``:
    class label strings (classification), ``targets``: (n,) float64 (regression), else None."""

    path: Path
    header: dict = field(default_factory=dict)
    class_labels: tuple[str, ...] | None = None
    series: list[np.ndarray] = field(default_factory=list)
    labels: list[str] | None = None
    targets: np.ndarray | None = None

    @property
    def problem(self) -> str | None:
        return self.header.get("problemname")


def _bool(path, lineno, key, value) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"{path}:{lineno}: @{key} must be true or false, got {value!r}")
    return v == "true"


def _int(path, lineno, key, value) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 1:
        raise ValueError(f"{path}:{lineno}: @{key} must be a positive integer, got {value!r}")
    return n


def _parse_header(path: Path, lineno: int, line: str, ts: TsData) -> None:
    key, _, rest = line[1:].replace("\t", " ").partition(" ")
    key, rest = key.lower(), rest.strip()
    if key in ("dimension", "dimensions"):
        ts.header["dimensions"] = _int(path, lineno, key, rest)
    elif key == "serieslength":
        ts.header["serieslength"] = _int(path, lineno, key, rest)
    elif key in BOOL_KEYS or key == "targetlabel":
        ts.header[key] = _bool(path, lineno, key, rest)
    elif key == "classlabel":
        words = rest.split()
        if not words:
            raise ValueError(f"{path}:{lineno}: @classLabel needs true <labels...> or false")
        ts.header["classlabel"] = _bool(path, lineno, key, words[0])
        if ts.header["classlabel"]:
            if len(words) < 2:
                raise ValueError(f"{path}:{lineno}: @classLabel true must list the class labels")
            if len(set(words[1:])) != len(words) - 1:
                raise ValueError(f"{path}:{lineno}: @classLabel lists a label twice: {words[1:]}")
            ts.class_labels = tuple(words[1:])
    elif key == "problemname":
        if not rest:
            raise ValueError(f"{path}:{lineno}: @problemName needs a name")
        ts.header[key] = rest
    else:  # unknown tags are kept as text, not interpreted
        ts.header[key] = rest


def _parse_values(path: Path, lineno: int, dim: int, text: str) -> np.ndarray:
    text = text.strip()
    if not text:
        raise ValueError(f"{path}:{lineno}: dimension {dim + 1} has no values")
    if "(" in text:
        raise ValueError(f"{path}:{lineno}: timestamped values '(t, v)' are not supported")
    try:
        return np.array(text.replace("?", "nan").split(","), dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}:{lineno}: dimension {dim + 1}: {err}") from None


def read_ts(path: str | Path) -> TsData:
    """Parse a ``.ts`` file (see the module docstring) into a ``TsData``; errors name ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .ts file")
    ts = TsData(path=path)
    labelled = None
    n_dims = None
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith(("#", "%")):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(f"{path}:{lineno}: expected a @header line or @data, got {line[:40]!r}")
                if line.lower().split()[0] == "@data":
                    in_data = True
                    if ts.header.get("timestamps"):
                        raise ValueError(f"{path}:{lineno}: timestamped .ts files are not supported")
                    cls, tgt = ts.header.get("classlabel"), ts.header.get("targetlabel")
                    if cls and tgt:
                        raise ValueError(f"{path}: both @classLabel true and @targetLabel true")
                    labelled = "class" if cls else "target" if tgt else None
                    if labelled == "class":
                        ts.labels = []
                    elif labelled == "target":
                        ts.targets = []
                    n_dims = ts.header.get("dimensions")
                    if ts.header.get("univariate") is True:
                        if n_dims not in (None, 1):
                            raise ValueError(f"{path}: @univariate true but @dimensions {n_dims}")
                        n_dims = 1
                    continue
                _parse_header(path, lineno, line, ts)
                continue
            if line.startswith("@"):
                raise ValueError(f"{path}:{lineno}: header line {line.split()[0]!r} after @data")
            fields = line.split(":")
            if labelled:
                if len(fields) < 2:
                    raise ValueError(f"{path}:{lineno}: no label field (expected dims:...:label)")
                *fields, label = fields
                label = label.strip()
                if labelled == "class":
                    if label not in ts.class_labels:
                        raise ValueError(
                            f"{path}:{lineno}: class label {label!r} is not one of "
                            f"@classLabel {ts.class_labels}"
                        )
                    ts.labels.append(label)
                else:
                    try:
                        ts.targets.append(float(label))
                    except ValueError:
                        raise ValueError(f"{path}:{lineno}: target {label!r} is not a number") from None
            if n_dims is None:
                n_dims = len(fields)
            if len(fields) != n_dims:
                raise ValueError(f"{path}:{lineno}: {len(fields)} dimensions, expected {n_dims}")
            dims = [_parse_values(path, lineno, d, text) for d, text in enumerate(fields)]
            lengths = {len(d) for d in dims}
            if len(lengths) != 1:
                raise ValueError(f"{path}:{lineno}: dimensions of unequal lengths {[len(d) for d in dims]}")
            want = ts.header.get("serieslength")
            if ts.header.get("equallength") and want is not None and len(dims[0]) != want:
                raise ValueError(f"{path}:{lineno}: {len(dims[0])} values, but @seriesLength {want}")
            if not ts.header.get("missing", True) and any(np.isnan(d).any() for d in dims):
                raise ValueError(f"{path}:{lineno}: missing values ('?') although @missing false")
            ts.series.append(np.stack(dims))
    if not in_data:
        raise ValueError(f"{path}: no @data line (not a .ts file, or truncated header)")
    if not ts.series:
        raise ValueError(f"{path}: no cases after @data")
    if ts.targets is not None:
        ts.targets = np.asarray(ts.targets, dtype=np.float64)
    return ts


def stack_cases(ts: TsData) -> np.ndarray:
    """The cases as one array (n, length, channels) float32; every case must have the same length."""
    lengths = sorted({s.shape[1] for s in ts.series})
    if len(lengths) != 1:
        raise ValueError(f"{ts.path}: cases of unequal lengths {lengths[:5]}...; lindy needs equal lengths")
    return np.stack(ts.series).transpose(0, 2, 1).astype(np.float32)


# ----------------------------------------------------------------------------------------------- splits


def sklearn_style_split(n: int, seed_first: int, seed_second: int) -> tuple[np.ndarray, ...]:
    """(train, val, test) indices of two scikit-learn ``train_test_split`` calls, 70 / 15 / 15.

    ``train_test_split(test_size=f, random_state=s)`` keeps ``n_test = ceil(f n)``: with
    ``p = RandomState(s).permutation(n)``, test = ``p[:n_test]``, train = ``p[n_test:]``. First call: f=0.3,
    s=seed_first on all n cases; second: f=0.5, s=seed_second on the held-out part, whose "train" part is
    the validation set and whose "test" part the test set.
    """
    n_eval = math.ceil(0.3 * n)
    p = np.random.RandomState(seed_first).permutation(n)
    held, train = p[:n_eval], p[n_eval:]
    n_test = math.ceil(0.5 * n_eval)
    q = np.random.RandomState(seed_second).permutation(n_eval)
    return train, held[q[n_test:]], held[q[:n_test]]


def torch_random_split(n: int, n_train: int, seed: int) -> tuple[np.ndarray, ...]:
    """(train, val, test) indices of LEM's heart-rate split: ``random_split(range(n), [n_train, rest],
    Generator().manual_seed(seed))``, then ``random_split(rest, [rest // 2, rest - rest // 2])`` with a
    fresh generator of the same seed into test (first) and validation (second)."""
    if not 0 < n_train < n - 1:
        raise ValueError(f"cannot split {n} cases into {n_train} training cases and two held-out halves")
    p = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    train, rest = p[:n_train], p[n_train:]
    q = torch.randperm(len(rest), generator=torch.Generator().manual_seed(int(seed))).numpy()
    n_test = len(rest) // 2
    return train, rest[q[n_test:]], rest[q[:n_test]]


def original_split(n_train: int, n_test: int, val_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """(train, val, test) indices into TRAIN + TEST cases: TEST is the test set; ``round(val_fraction *
    n_train)`` TRAIN cases drawn with ``default_rng(seed)`` are the validation set."""
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    n_val = int(round(val_fraction * n_train))
    if not 0 < n_val < n_train:
        raise ValueError(f"val_fraction={val_fraction} leaves an empty split of {n_train} training cases")
    p = np.random.default_rng(seed).permutation(n_train)
    return np.sort(p[n_val:]), np.sort(p[:n_val]), np.arange(n_train, n_train + n_test)


# ---------------------------------------------------------------------------------------------- loading


def _paths(root, folder: str, problem: str) -> tuple[Path, Path]:
    if root is None:
        raise ValueError(
            f"data.root is not set: point it at the folder holding {folder}/ "
            f"(e.g. data.root=/data for /data/{folder}/{problem}_TRAIN.ts)"
        )
    base = Path(root).expanduser() / folder
    paths = (base / f"{problem}_TRAIN.ts", base / f"{problem}_TEST.ts")
    layout = f"{base}/{problem}_{{TRAIN,TEST}}.ts (the .ts files of the UEA/UCR/Monash archive)"
    require_files(problem, layout, paths, names=True)
    return paths


def load_ts_pair(
    train_path: Path,
    test_path: Path,
    task: str,
    cache: bool = True,
    cache_dir=None,
    name: str = "ts",
    root=None,
) -> dict[str, torch.Tensor]:
    """TRAIN and TEST files -> ``x`` (n_train + n_test, L, C) float32 (TRAIN cases first), ``y`` (n,)
    int64 class indices (positions in TRAIN's ``@classLabel`` list) or (n, 1) float32 targets, and
    ``n_train`` (1,); cached (``lindy.data.cache``) under ``cache_dir``, else ``default_cache_dir(root)``."""

    def build():
        parts = [read_ts(train_path), read_ts(test_path)]
        xs = [stack_cases(t) for t in parts]
        if xs[0].shape[1:] != xs[1].shape[1:]:
            raise ValueError(
                f"{train_path} and {test_path} differ: (length, channels) "
                f"{xs[0].shape[1:]} vs {xs[1].shape[1:]}"
            )
        if task == "classification":
            for t in parts:
                if t.labels is None:
                    raise ValueError(f"{t.path}: no class labels (@classLabel true expected)")
            if parts[1].class_labels != parts[0].class_labels:
                raise ValueError(f"{test_path}: @classLabel {parts[1].class_labels} differs from TRAIN's")
            index = {c: i for i, c in enumerate(parts[0].class_labels)}
            y = torch.tensor([index[c] for t in parts for c in t.labels], dtype=torch.int64)
        else:
            for t in parts:
                if t.targets is None:
                    raise ValueError(f"{t.path}: no regression targets (@targetLabel true expected)")
            y = torch.from_numpy(np.concatenate([t.targets for t in parts]).astype(np.float32)).unsqueeze(-1)
        return {
            "x": torch.from_numpy(np.concatenate(xs)),
            "y": y,
            "n_train": torch.tensor([len(xs[0])]),
            "n_classes": torch.tensor([len(parts[0].class_labels or ())]),
        }

    where = {"cache_dir": cache_dir, "root": root, "sources": [train_path, test_path], "enabled": cache}
    return cached_tensors(f"uea-{name}", {"task": task}, CACHE_VERSION, build, **where)


SPLITS = ("lem", "s4", "original")


def _check_split(split, with_s4: bool) -> None:
    check_choice("split", split, [s for s in SPLITS if s != "s4" or with_s4])


def _check_options(split, with_s4: bool, split_seed, val_fraction, cache) -> None:
    """Every option's type and range, before any file is read (``split_seed`` None: the split's own)."""
    _check_split(split, with_s4)
    if split_seed is not None:
        check_seed("split_seed", split_seed)
    check_fraction("val_fraction", val_fraction)
    check_bool("cache", cache)


def _load(root, problem: str, task: str, cache, cache_dir, files_root=None):
    """The TRAIN / TEST paths of ``problem`` under ``files_root`` (default ``root``) and their tensors."""
    paths = _paths(root if files_root is None else files_root, problem, problem)
    return paths, load_ts_pair(*paths, task, cache, cache_dir, problem, root=root)


def _splits(d, split, split_seed, val_fraction, lem, s4_seed=None):
    """(train, val, test) index arrays of the chosen procedure (see the module docstring)."""
    _check_split(split, s4_seed is not None)
    n, n_train = len(d["x"]), int(d["n_train"][0])
    if split == "lem":
        return lem(n, n_train)
    if split == "s4":
        seed = s4_seed if split_seed is None else split_seed
        return sklearn_style_split(n, seed, seed + 1)
    return original_split(n_train, n - n_train, val_fraction, 0 if split_seed is None else split_seed)


def _build(d, idx, task: str, channels: int, classes: int, source: str) -> DataSplits:
    """Check the layout (channels, classes, no NaN) and cut the cached tensors into train/val/test."""
    x, y = d["x"], d["y"]
    if x.shape[2] != channels:
        raise ValueError(f"{source}: expected {channels} channels per step, the files have {x.shape[2]}")
    if torch.isnan(x).any() or (y.dtype.is_floating_point and torch.isnan(y).any()):
        raise ValueError(
            f"{source}: the files contain missing values ('?'), which lindy's models cannot take"
        )
    if task == "classification" and int(d["n_classes"][0]) != classes:
        raise ValueError(f"{source}: expected {classes} classes, @classLabel lists {int(d['n_classes'][0])}")
    sets = [TensorDataset(x[torch.as_tensor(i)], y[torch.as_tensor(i)]) for i in idx]
    metric = "accuracy" if task == "classification" else "rmse"
    info = TaskInfo(
        d_input=channels,
        d_output=classes if task == "classification" else 1,
        length=x.shape[1],
        task=task,
        metric=metric,
        source="real",
    )
    return DataSplits(*sets, info)


@register_dataset("eigenworms")
def eigenworms(
    root=None,
    split: str = "lem",
    split_seed: int = 1234,
    val_fraction: float = 0.15,
    cache=True,
    cache_dir=None,
) -> DataSplits:
    """EigenWorms (UEA): x (17984, 6) raw eigenworm coefficients, y () class in 0..4; LEM's 70/15/15 split."""
    _check_options(split, False, split_seed, val_fraction, cache)
    paths, d = _load(root, "EigenWorms", "classification", cache, cache_dir)
    seed = 1234 if split_seed is None else split_seed  # LEM's random_state
    idx = _splits(d, split, seed, val_fraction, lem=lambda n, _: sklearn_style_split(n, seed, seed))
    return _build(d, idx, "classification", 6, 5, str(paths[0].parent))


def _bidmc(root, target, split, split_seed, val_fraction, cache, cache_dir) -> DataSplits:
    _check_options(split, True, split_seed, val_fraction, cache)
    paths, d = _load(root, f"BIDMC32{target}", "regression", cache, cache_dir)
    seed = 123456 if split_seed is None else split_seed
    idx = _splits(
        d,
        split,
        split_seed,
        val_fraction,
        lem=lambda n, n_train: torch_random_split(n, n_train, seed),
        s4_seed=0,
    )
    return _build(d, idx, "regression", 2, 1, str(paths[0].parent))


@register_dataset("bidmc_hr")
def bidmc_hr(root=None, split="lem", split_seed=None, val_fraction=0.15, cache=True, cache_dir=None):
    """BIDMC heart rate (Monash): x (4000, 2) PPG and ECG, y (1,) beats/min; split lem (seed 123456) or s4."""
    return _bidmc(root, "HR", split, split_seed, val_fraction, cache, cache_dir)


@register_dataset("bidmc_rr")
def bidmc_rr(root=None, split="lem", split_seed=None, val_fraction=0.15, cache=True, cache_dir=None):
    """BIDMC respiratory rate (Monash): x (4000, 2), y (1,) breaths/min; split lem (LEM's HR split) or s4."""
    return _bidmc(root, "RR", split, split_seed, val_fraction, cache, cache_dir)


@register_dataset("bidmc_spo2")
def bidmc_spo2(root=None, split="lem", split_seed=None, val_fraction=0.15, cache=True, cache_dir=None):
    """BIDMC oxygen saturation (Monash): x (4000, 2), y (1,) SpO2 %; split lem (LEM's HR split) or s4."""
    return _bidmc(root, "SpO2", split, split_seed, val_fraction, cache, cache_dir)


def aeon_data_dir() -> Path:
    """The folder of example data sets inside the installed ``aeon`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "acsf1 reads the ACSF1 .ts files that the aeon package ships: pip install 'lindy[data]' "
            "(or aeon>=1.0), or set data.root to a folder holding ACSF1/ACSF1_{TRAIN,TEST}.ts"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@register_dataset("acsf1")
def acsf1(root=None, split="original", split_seed=0, val_fraction=0.15, cache=True, cache_dir=None):
    """UCR ACSF1: x (1460, 1) appliance power, y () class in 0..9; files from aeon unless ``root`` is set.
    ``split="original"``: 100 TRAIN (of which ``val_fraction`` validation) / 100 TEST; ``"lem"``: the
    EigenWorms procedure (70/15/15 of all 200 cases, seed ``split_seed`` twice)."""
    _check_options(split, False, split_seed, val_fraction, cache)
    paths, d = _load(
        root, "ACSF1", "classification", cache, cache_dir, aeon_data_dir() if root is None else None
    )
    seed = 0 if split_seed is None else split_seed
    idx = _splits(d, split, seed, val_fraction, lem=lambda n, _: sklearn_style_split(n, seed, seed))
    return _build(d, idx, "classification", 1, 10, str(paths[0].parent))
