"""``lindy data generate``: the module docstring's examples run, and every key=value option is honoured."""

from __future__ import annotations

import os
import shlex
import stat

import pytest
import torch

import lindy.data.cli as data_cli
from lindy.kernels import lif_reference

SMALL = {"lif": ["--num", "6", "--length", "16"], "copying": ["n_train=4", "n_val=2", "n_test=2"]}


def _examples() -> list[list[str]]:
    """The ``lindy data generate ...`` lines of the module docstring, as argument lists after ``data``."""
    lines = [
        ln.strip() for ln in data_cli.__doc__.splitlines() if ln.strip().startswith("lindy data generate")
    ]
    return [shlex.split(ln)[2:] for ln in lines]


@pytest.mark.parametrize("argv", _examples(), ids=lambda a: a[1])
def test_docstring_examples_run(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the example as written, made small by options added at the end (later flags win)
    assert data_cli.main([*argv, *SMALL[argv[1]]]) == 0
    written = capsys.readouterr().out.split("wrote ", 1)[1].strip()
    assert (tmp_path / written).is_file() and str(written).startswith("data/")


def test_lif_key_value_options_are_honoured(tmp_path, capsys):
    out = str(tmp_path)
    assert data_cli.main(["generate", "lif", "num=5", "length=12", "tau=0.5", "seed=3", "--out", out]) == 0
    path = tmp_path / "training-mem-T12-N(0.0,1.0)-5-tau_0.5.pt"
    data = torch.load(path, weights_only=True)
    assert data["input"].shape == (5, 12)
    mem, _ = lif_reference(data["input"].double(), 0.5)
    torch.testing.assert_close(data["mem"], mem.float(), rtol=0, atol=1e-6)
    # the same options as flags, in another order, give the same file
    assert data_cli.main(["generate", "--tau", "0.5", "lif", "--out", out, "--seed", "3", "--num", "5",
                          "--length", "12"]) == 0  # fmt: skip
    assert torch.equal(torch.load(path, weights_only=True)["input"], data["input"])


def test_options_after_flags_reach_the_builder(tmp_path):
    argv = ["generate", "adding", "--out", str(tmp_path), "length=8", "n_train=4", "n_val=2", "n_test=3"]
    assert data_cli.main(argv) == 0
    payload = torch.load(tmp_path / "adding.pt", weights_only=True)
    assert payload["train"]["x"].shape == (4, 8, 2) and payload["test"]["y"].shape == (3, 1)
    assert payload["info"]["length"] == 8


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_file_is_readable_by_others(tmp_path):
    saved = os.umask(0o022)
    try:
        data_cli.main(["generate", "lif", "--num", "2", "--length", "4", "--out", str(tmp_path)])
    finally:
        os.umask(saved)
    (path,) = tmp_path.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
