"""Every bad input a user can give the data sets, ``lindy data``, ``lindy bench``/``smoke`` and
``load_pretrained``, in one table.

Each row: what is called (a builder with bad options, the data command line, a reader on a bad file, a
loader on mismatched weights), the error it must raise (an exception type, or the command's exit status),
and a regular expression its message must match: the message names the option, file or folder at fault.
No row may pass silently, crash with an unrelated error, or touch the network. README's reliability figure
counts these rows (``len(CASES)``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import pickle
import re
import shlex
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import lindy
from lindy.data import build_data
from lindy.data.cli import main as data_main


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Path], object]  # called with an empty temporary folder
    expect: type[BaseException] | int  # exception type, or the exit status of a command line
    match: str  # regular expression the error message must match (re.search)


def cli(*argv):
    """``lindy data ARGV`` with ``--out`` in the temporary folder."""
    return lambda tmp: data_main([*argv, "--out", str(tmp)] if argv[0] == "generate" else list(argv))


# --------------------------------------------------------------------------------------------- bad files
def _idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def mnist_with_label(tmp: Path, label: int):
    raw = tmp / "MNIST" / "raw"
    for split, n in (("train", 20), ("t10k", 5)):
        labels = np.arange(n) % 10
        if split == "train":
            labels[7] = label
        _idx(raw / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte.gz", labels)
    return build_data("smnist", root=str(tmp))


def cifar_with_label(tmp: Path, label: int):
    folder = tmp / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"):
        labels = [0, 1, label] if name == "data_batch_2" else [0, 1, 2]
        batch = {b"data": np.zeros((3, 3072), np.uint8), b"labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
    return build_data("scifar", root=str(tmp), cache=False)


def listops_with_target(tmp: Path, target: str):
    folder = tmp / "listops"
    folder.mkdir()
    for split in ("train", "val", "test"):
        value = target if split == "val" else "3"
        (folder / f"basic_{split}.tsv").write_text(f"Source\tTarget\n[MAX 2 3 ]\t3\n[MIN 4 5 ]\t{value}\n")
    return build_data("listops", root=str(tmp), cache=False)


def aan_with_label(tmp: Path, label: str):
    folder = tmp / "tsv_data"
    folder.mkdir()
    for name in ("train", "eval", "test"):
        value = label if name == "test" else "1"
        (folder / f"new_aan_pairs.{name}.tsv").write_text(f"{value}\ta\tb\tfirst text\tsecond text\n")
    return build_data("aan", root=str(tmp), cache=False)


def acsf1_with_label(tmp: Path, label: str):
    folder = tmp / "ACSF1"
    folder.mkdir()
    head = "@problemName ACSF1\n@univariate true\n@equalLength true\n@classLabel true 1 2\n@data\n"
    for split in ("TRAIN", "TEST"):
        value = label if split == "TRAIN" else "2"
        (folder / f"ACSF1_{split}.ts").write_text(head + f"1,2,3:1\n4,5,6:{value}\n")
    return build_data("acsf1", root=str(tmp), cache=False)


def pathfinder_with_label(tmp: Path, label: str):
    meta = tmp / "pathfinder32" / "curv_baseline" / "metadata"
    meta.mkdir(parents=True)
    (meta / "0.npy").write_text(f"imgs/0 sample_0.png 0 1\nimgs/0 sample_1.png 1 {label}\n")
    return build_data("pathfinder", root=str(tmp), difficulty="curv_baseline", cache=False)


# ------------------------------------------------------------------------------------ mismatched weights
def export_with(tmp: Path, change: Callable[[dict, dict], None]):
    """An export folder of a tiny model whose config.json or weights ``change(config, tensors)`` alters."""
    from safetensors.torch import save_file

    from lindy.data import TaskInfo
    from lindy.models import build_model

    info = TaskInfo(d_input=2, d_output=3, length=8, task="classification", metric="accuracy")
    config = {
        "model": {"d_model": 8, "n_layers": 1, "layer": "s4d"},
        "info": dataclasses.asdict(info),
        "format": "lindy-1",
    }
    tensors = {k: v.contiguous() for k, v in build_model(config["model"], info).state_dict().items()}
    change(config, tensors)
    save_file(tensors, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config))
    return lindy.load_pretrained(tmp)


def _wider(config, tensors):
    config["model"]["d_model"] = 16


def _dropped(config, tensors):
    tensors.pop(sorted(tensors)[0])
    tensors["extra.weight"] = torch.zeros(2)


# lindy data ARGS (split as a shell would; --out goes to the temporary folder): exit status 2
CLI = [
    ("lif-negative-num", "generate lif --num -3", r"--num must be a positive int, got -3"),
    ("lif-zero-length", "generate lif --length 0", r"--length must be a positive int"),
    ("lif-negative-num-word", "generate lif num=-1", r"error: num must be a positive int, got -1"),
    ("lif-tau-above-1", "generate lif --tau 1.5", r"--tau must be <= 1"),
    ("lif-negative-seed", "generate lif --seed -1", r"--seed must be an int >= 0"),
    ("lif-negative-std", "generate lif std=-1", r"error: std must be >= 0"),
    ("lif-unknown-word", "generate lif taux=0.1", r"unknown lif option 'taux'.*'tau'"),
    ("lif-given-twice", "generate lif num=4 --num 5", r"num given twice"),
    ("lif-bad-split-word", "generate lif split=val", r"error: split must be train or test"),
    ("lif-bad-split-flag", "generate lif --split val", r"--split: invalid choice"),
    ("lif-flag-on-other-set", "generate adding --num 5", r"--num: lif only"),
    ("unknown-option", "generate adding lenght=5", r"no option 'lenght'.*'length'"),
    ("negative-count", "generate adding n_train=-1", r"n_train must be a positive int"),
    ("zero-count-after-flag", "generate copying --out . n_val=0", r"n_val must be a positive int"),
    ("wrong-type", "generate copying delay=x", r"delay must be a positive int, got 'x'"),
    ("not-key-value", "generate adding seed", r"options must be key=value, got 'seed'"),
    ("word-twice", "generate adding seed=1 seed=2", r"option 'seed' given twice"),
    ("unknown-set", "generate addding", r"NAME must be lif or one of.*'adding'"),
    ("list-extra", "list adding", r"unrecognized arguments: adding"),
    ("unknown-flag", "generate adding --nmu 3", r"unrecognized arguments: --nmu"),
    ("missing-files", "generate scifar root=/nonexistent/lindy", r"/nonexistent/lindy/cifar-10-batches-py/"),
]

# build_data(NAME, **OPTIONS), each R replaced by the empty temporary folder
R = object()  # stands for the temporary folder
Bad, NotFound = ValueError, FileNotFoundError
BUILD = [
    # missing files: the message names the folder the reader looked in
    ("pathx-no-root", "pathfinder", {"resolution": 128}, Bad, r"holding pathfinder128/ .*pathfinder128/"),
    ("pathx-no-files", "pathfinder", {"root": R, "resolution": 128}, NotFound, r"pathfinder128/"),
    ("pathfinder64-no-files", "pathfinder", {"root": R, "resolution": 64}, NotFound, r"pathfinder64/"),
    ("fashion-no-root", "smnist", {"kind": "fashion"}, Bad, r"holding FashionMNIST/raw/"),
    ("fashion-no-files", "smnist", {"root": R, "kind": "fashion"}, NotFound, r"FashionMNIST/raw/"),
    ("mnist-no-files", "psmnist", {"root": R}, NotFound, r"MNIST/raw/.*train-images-idx3-ubyte"),
    ("cifar-no-files", "scifar", {"root": R}, NotFound, r"cifar-10-batches-py/\{data_batch_1"),
    ("listops-no-files", "listops", {"root": R}, NotFound, r"basic_\{train,val,test\}\.tsv"),
    ("aan-no-files", "aan", {"root": R}, NotFound, r"tsv_data/new_aan_pairs"),
    ("imdb-no-files", "imdb", {"root": R}, NotFound, r"aclImdb/train/neg/\*\.txt"),
    ("speech-no-files", "sc10", {"root": R}, NotFound, r"SpeechCommands/speech_commands_v0\.02/"),
    ("uea-no-files", "eigenworms", {"root": R}, NotFound, r"EigenWorms/EigenWorms_\{TRAIN,TEST"),
    ("monash-no-files", "bidmc_rr", {"root": R}, NotFound, r"BIDMC32RR/BIDMC32RR_\{TRAIN,TEST\}"),
    ("wikitext-no-files", "wikitext103", {"root": R}, NotFound, r"wikitext-103/wiki\.train"),
    ("ptb-char-no-files", "ptb_char", {"root": R}, NotFound, r"ptb\.char\.train\.txt"),
    # options of the wrong type or out of range name the option
    ("adding-short", "adding", {"length": 1}, Bad, r"length must be >= 2"),
    ("adding-length-text", "adding", {"length": "10"}, Bad, r"length must be a positive int, got '10'"),
    ("adding-negative-seed", "adding", {"seed": -1}, Bad, r"seed must be an int >= 0"),
    ("lif-no-train", "lif", {"n_train": 0}, Bad, r"n_train must be a positive int, got 0"),
    ("lif-negative-val", "lif", {"n_val": -5}, Bad, r"n_val must be a positive int, got -5"),
    ("lif-tau", "lif", {"tau": 2.0}, Bad, r"tau must be <= 1"),
    ("lif-seed-float", "lif", {"seed": 0.5}, Bad, r"seed must be an int >= 0, got 0\.5"),
    ("fhn-t-end-text", "fhn", {"t_end": "x"}, Bad, r"t_end must be a finite number"),
    ("fhn-cache-text", "fhn", {"cache": "no"}, Bad, r"cache must be true or false, got 'no'"),
    ("fhn-no-test", "fhn", {"n_test": 0}, Bad, r"n_test must be a positive int"),
    ("listops-gen-seed-float", "listops_generated", {"seed": 1.5}, Bad, r"seed must be an int >= 0"),
    ("listops-gen-bool-length", "listops_generated", {"min_length": True}, Bad, r"min_length"),
    ("listops-cache-text", "listops", {"root": R, "cache": "yes"}, Bad, r"cache must be true or"),
    ("pathfinder-res-float", "pathfinder", {"resolution": 32.0}, Bad, r"resolution must be one of"),
    ("pathfinder-seed-text", "pathfinder", {"root": R, "split_seed": "a"}, Bad, r"split_seed must"),
    ("pathfinder-fraction", "pathfinder", {"val_fraction": 1.0}, Bad, r"val_fraction must be in \[0, 1\)"),
    ("pathfinder-gen-seed", "pathfinder_generated", {"seed": -1}, Bad, r"seed must be an int >= 0"),
    ("scifar-fraction-text", "scifar", {"val_fraction": "0.1"}, Bad, r"val_fraction must be a number"),
    ("scifar-grayscale-text", "scifar", {"grayscale": "yes"}, Bad, r"grayscale must be true or false"),
    ("lra-image-seed", "lra_image", {"split_seed": -1}, Bad, r"split_seed must be an int >= 0"),
    ("ncifar-length-float", "ncifar", {"length": 40.5}, Bad, r"length must be a positive int"),
    ("ncifar-noise-seed", "ncifar", {"noise_seed": -2}, Bad, r"noise_seed must be an int >= 0"),
    ("ncifar-n-val", "ncifar", {"n_val": 0}, Bad, r"n_val must be a positive int"),
    ("imdb-fraction", "imdb", {"root": R, "val_fraction": 1}, Bad, r"val_fraction must be in \[0, 1"),
    ("imdb-seed-none", "imdb", {"root": R, "split_seed": None}, Bad, r"split_seed must be an int"),
    ("aan-cache-int", "aan", {"root": R, "cache": 0}, Bad, r"cache must be true or false"),
    ("eigenworms-fraction", "eigenworms", {"val_fraction": 2}, Bad, r"val_fraction must be in \(0, 1\)"),
    ("bidmc-seed", "bidmc_hr", {"split_seed": -1}, Bad, r"split_seed must be an int >= 0"),
    ("acsf1-cache-int", "acsf1", {"cache": 1}, Bad, r"cache must be true or false"),
    ("uea-split", "bidmc_hr", {"split": "lra"}, Bad, r"split must be one of"),
    ("smnist-seed", "smnist", {"root": R, "split_seed": -1}, Bad, r"split_seed must be an int >= 0"),
    ("smnist-kind", "smnist", {"root": R, "kind": "kmnist"}, Bad, r"kind must be one of"),
    ("psmnist-no-permutation", "psmnist", {"permutation_seed": None}, Bad, r"permutation_seed must"),
    ("embedded-seed", "smnist_embedded", {"seed": -1}, Bad, r"seed must be an int >= 0"),
    ("sc10-features", "sc10", {"root": R, "features": "wav"}, Bad, r"features must be one of"),
    ("sc35-features", "sc35", {"root": R, "features": "wav"}, Bad, r"features must be one of"),
    ("ptb-seq-len", "ptb_word", {"seq_len": 0}, Bad, r"seq_len must be a positive int"),
    ("copying-symbols", "copying", {"n_symbols": 0}, Bad, r"n_symbols must be a positive int"),
    ("recall-fresh-int", "associative_recall", {"fresh": 1}, Bad, r"fresh must be true or false"),
    ("lds-radius", "lds", {"spectral_radius": 1.0}, Bad, r"spectral_radius must be in \(0, 1\)"),
    ("unknown-data-set", "smnsit", {}, Bad, r"data set must be one of"),
]

# a reader or loader on a bad file (made in the temporary folder)
FILES = [
    # labels outside the task's classes fail at load, naming the file
    ("mnist-label-10", lambda t: mnist_with_label(t, 10), Bad, r"train-labels.*outside 0\.\.9.*10 at item 7"),
    ("cifar-label-10", lambda t: cifar_with_label(t, 10), Bad, r"data_batch_2: labels outside 0\.\.9"),
    ("listops-target-12", lambda t: listops_with_target(t, "12"), Bad, r"basic_val\.tsv line 3: Target"),
    ("aan-label-2", lambda t: aan_with_label(t, "2"), Bad, r"test\.tsv line 1: label must be 0 or 1"),
    ("uea-unlisted-label", lambda t: acsf1_with_label(t, "7"), Bad, r"TRAIN\.ts:7: class label '7'"),
    ("pathfinder-label-2", lambda t: pathfinder_with_label(t, "2"), Bad, r"0\.npy line 2: expected"),
    # load_pretrained: a config that does not match the weights lists every mismatch
    ("pretrained-shapes", lambda t: export_with(t, _wider), Bad, r"encoder\.weight: model \(16, 2\), file"),
    ("pretrained-keys", lambda t: export_with(t, _dropped), Bad, r"missing: .*\n.*unexpected: extra\.w"),
    ("pretrained-no-folder", lambda t: lindy.load_pretrained(t), NotFound, r"config\.json not found"),
]

# the other command lines: exit status 2 before anything runs
BENCH = [
    ("smoke-zero-batch", ["--batch", "0"], r"--batch: expected an int >= 1, got '0'"),
    ("smoke-negative-length", ["--length", "-8"], r"--length: expected an int >= 1, got '-8'"),
    ("smoke-text-width", ["--d-model", "wide"], r"--d-model: expected an int >= 1, got 'wide'"),
    ("speed-zero-length", ["speed", "--lengths", "1024", "0"], r"--lengths: expected an int >= 1, got '0'"),
]


def _bench(argv):
    def run(tmp):
        from lindy.bench.cli import main as bench_main
        from lindy.bench.smoke import main as smoke_main

        return bench_main(argv) if argv[0] == "speed" else smoke_main(argv)

    return run


def _build(name, options):
    def run(tmp):
        return build_data(name, **{k: str(tmp) if v is R else v for k, v in options.items()})

    return run


CASES = [
    *(Case(f"cli-{i}", cli(*shlex.split(args)), 2, match) for i, args, match in CLI),
    *(Case(i, _build(name, options), error, match) for i, name, options, error, match in BUILD),
    *(Case(i, run, error, match) for i, run, error, match in FILES),
    *(Case(i, _bench(argv), 2, match) for i, argv, match in BENCH),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LINDY_CACHE", str(tmp_path / "cache"))  # no row writes into the user's cache
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if isinstance(case.expect, int):
        with pytest.raises(SystemExit) as exit_info:
            case.run(work)
        message = capsys.readouterr().err
        assert exit_info.value.code == case.expect, message
    else:
        with pytest.raises(case.expect) as err:
            case.run(work)
        message = str(err.value)
    assert re.search(case.match, message), f"{case.id}: {message!r} does not match {case.match!r}"
    assert "Traceback" not in message


def test_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)
