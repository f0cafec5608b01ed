"""benchmarks/stu_side_by_side.py and lem_side_by_side.py: lindy beside the DeepMind STU and the LEM script.

The references are not in CI: the STU check needs jax, dm-haiku, optax and chex and a checkout of
google-deepmind/spectral_ssm named by SPECTRAL_SSM_ROOT, and skips without them; the LEM reference side
needs tk-rusch/LEM's script and is only checked for its error here, while lindy's side runs for real.
"""

import math
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _load(name: str, monkeypatch, script_loader):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import side_by_side from their own folder
    return script_loader(BENCH / f"{name}.py", f"{name}_under_test")


@pytest.fixture
def stu_sbs(monkeypatch, script_loader):
    return _load("stu_side_by_side", monkeypatch, script_loader)


@pytest.fixture
def lem_sbs(monkeypatch, script_loader):
    return _load("lem_side_by_side", monkeypatch, script_loader)


def test_warmup_cosine_is_the_references_schedule(stu_sbs):
    f = stu_sbs.warmup_cosine
    assert f(0, 1e-3, 100, 10) == pytest.approx(1e-7)
    assert f(5, 1e-3, 100, 10) == pytest.approx((1e-3 - 1e-7) / 2 + 1e-7)
    assert f(10, 1e-3, 100, 10) == pytest.approx(1e-3)  # the peak at the end of the warmup
    assert f(55, 1e-3, 100, 10) == pytest.approx((1e-3 - 1e-7) / 2 + 1e-7)  # half way down the cosine
    assert f(100, 1e-3, 100, 10) == pytest.approx(1e-7)


def test_missing_spectral_ssm_names_the_argument(stu_sbs, tmp_path):
    with pytest.raises(stu_sbs.ReferenceMissing, match="--reference-root"):
        stu_sbs.load_reference(tmp_path)


def test_stu_same_start_then_training(stu_sbs):
    root = os.environ.get("SPECTRAL_SSM_ROOT")
    try:
        refs = stu_sbs.load_reference(Path(root) if root else None)
    except stu_sbs.ReferenceMissing as err:
        pytest.skip(f"no spectral_ssm reference: {err}")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 32, 1, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    order = stu_sbs.batch_order(len(x), 3, 2, seed=0)
    ref = stu_sbs.ReferenceSide(
        refs, seed=0, width=8, classes=3, layers=1, length=32, dropout=0.0, steps=2, warmup=1, lr=1e-2,
        m_y_lr=5e-5, x0=x[order[0]].numpy(),
    )  # fmt: skip
    net = stu_sbs.lindy_network(
        ref.unreplicated(), refs[2], d_in=1, width=8, classes=3, layers=1, length=32, dropout=0.0
    )
    check = stu_sbs.start_check(ref, net, x[order[0]], y[order[0]], tol=1e-4)
    assert check["ok"], check
    losses = [
        ref.train(x.numpy(), y.numpy(), order),
        stu_sbs.train_lindy(net, x, y, order, steps=2, warmup=1, lr=1e-2, m_y_lr=5e-5, seed=0),
    ]
    # without dropout the two sides take the same two steps
    assert stu_sbs.lockstep(*losses, rel=1e-4) == 2, losses


def test_lem_reference_dir_must_hold_the_script(lem_sbs, tmp_path):
    with pytest.raises(FileNotFoundError, match="--reference-dir"):
        lem_sbs.run_reference(tmp_path, 20, 10)


def test_lem_lindy_side_trains_and_reports(lem_sbs):
    result = lem_sbs.run_lindy(length=20, steps=20, seed=0)
    assert math.isfinite(result["test_mse"]) and result["test_mse"] < 1.0  # targets lie in [0, 2]
    assert result["curve_every_100"][-1] == result["last_val_mse"]


def test_lem_needs_reference_dir_for_reference_side(lem_sbs, capsys):
    with pytest.raises(SystemExit):
        lem_sbs.main(["--out", os.devnull])
    assert "--reference-dir" in capsys.readouterr().err
