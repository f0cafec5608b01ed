"""Synthetic data sets: FitzHugh-Nagumo, linear dynamical systems, the token memory tasks (each answer
recovered by a hand-written solver), fresh-per-item training data, their configs and the LEM fhn run."""

import pickle

import numpy as np
import pytest
import torch

from lindy.data import DATASETS, build_data
from lindy.data.adding import FreshDataset, adding_batch, stream_generator, stream_seed
from lindy.data.fhn import FHN_A, FHN_B, FHN_EPS, FHN_I, fhn_trajectories
from lindy.data.lds import lds_from_system, random_lds, spectral_radius_of
from lindy.data.recall import (
    IGNORE,
    associative_recall_batch,
    copying_batch,
    induction_heads_batch,
    selective_copying_batch,
)

SMALL = {"n_train": 6, "n_val": 3, "n_test": 4}


def split_x(data, split="train"):
    ds = getattr(data, split)
    return torch.stack([ds[i][0] for i in range(len(ds))])


# ------------------------------------------------------------------------------------ seeds and streams
def test_stream_seeds_differ_and_repeat():
    keys = [(0, "train"), (0, "val"), (0, "test"), (1, "train"), (0, "fresh", 0), (0, "fresh", 1)]
    seeds = [stream_seed(*k) for k in keys]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [stream_seed(*k) for k in keys]
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        stream_seed(-1, "train")


# ------------------------------------------------------------------------------------ FitzHugh-Nagumo
def fhn_rhs_torch(v, w, current=FHN_I):
    return v - v**3 / 3 - w + current, FHN_EPS * (v + FHN_A - FHN_B * w)


def test_fhn_trajectory_satisfies_the_ode():
    traj = fhn_trajectories([-0.9, 0.2, 0.95], length=1000, t_end=400.0)
    assert traj.shape == (3, 2, 1001)
    np.testing.assert_allclose(traj[:, :, 0], [[-0.9, 0], [0.2, 0], [0.95, 0]])
    dt = 400.0 / 1000
    s = torch.from_numpy(traj)

    def simpson_residual(current):
        f = torch.stack(fhn_rhs_torch(s[:, 0], s[:, 1], current), dim=1)
        # x(t+2h) - x(t) = h/3 (f(t) + 4 f(t+h) + f(t+2h)) + O(h^5)
        return (s[..., 2:] - s[..., :-2]) - dt / 3 * (f[..., 2:] + 4 * f[..., 1:-1] + f[..., :-2])

    good = simpson_residual(FHN_I).abs()
    assert good.max() < 0.03 and good.median() < 1e-3  # steps of v are up to ~0.56
    # the check has teeth: the same trajectories are far from the ODE with another input current I
    assert simpson_residual(0.0)[:, 0].abs().median() > 0.3  # v residual 2 dt (0.5 - 0) = 0.4
    # the model is excitable and oscillates at I = 0.5: v spikes repeatedly, w stays slow
    v = s[:, 0]
    assert v.max() > 1.5 and v.min() < -1.5 and (s[:, 1, 1:] - s[:, 1, :-1]).abs().max() < 0.05


def test_fhn_dataset_shapes_shift_determinism_and_cache(tmp_path):
    data = build_data("fhn", n_train=3, n_val=2, n_test=2, length=200, t_end=80.0, cache_dir=str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (3, 2, 2)
    x, y = data.train[0]
    assert x.shape == y.shape == (200, 1) and x.dtype == torch.float32
    assert data.info.task == "per_step_regression" and data.info.metric == "rmse"
    xs, ys = data.train.tensors
    assert torch.equal(xs[:, 1:], ys[:, :-1])  # y is x shifted by one sample
    v0 = xs[:, 0, 0].double()
    assert (v0.abs() <= 1).all()
    ref = fhn_trajectories(v0.numpy(), length=200, t_end=80.0)[:, 0]
    torch.testing.assert_close(ys[..., 0], torch.from_numpy(ref[:, 1:]).float(), rtol=0, atol=1e-4)
    assert len(list(tmp_path.glob("fhn-*.safetensors"))) == 3  # one cache file per split
    again = build_data("fhn", n_train=3, n_val=2, n_test=2, length=200, t_end=80.0, cache=False)
    assert torch.equal(again.train.tensors[0], xs) and torch.equal(
        again.test.tensors[1], data.test.tensors[1]
    )
    assert not torch.equal(data.val.tensors[0][:, 0], xs[:2, 0])  # splits use different streams
    other = build_data("fhn", n_train=3, n_val=2, n_test=2, length=200, t_end=80.0, seed=1, cache=False)
    assert not torch.equal(other.train.tensors[0], xs)


def test_fhn_bad_options():
    with pytest.raises(ValueError, match="n_test must be a positive int, got 0"):
        build_data("fhn", n_train=2, n_val=2, n_test=0, cache=False)
    with pytest.raises(ValueError, match="v0 must be a finite"):
        fhn_trajectories([float("nan")])


# ------------------------------------------------------------------------------------ linear systems
@pytest.mark.parametrize("kind", ["diagonal", "dense", "signs"])
@pytest.mark.parametrize("radius", [0.5, 0.99, 0.999])
def test_lds_spectral_radius_is_as_asked(kind, radius):
    A, B, C, D = random_lds(12, 3, 2, kind, radius, torch.Generator().manual_seed(1))
    assert spectral_radius_of(A) == pytest.approx(radius, abs=1e-12)
    assert A.shape == (12, 12) and B.shape == (12, 3) and C.shape == (2, 12) and D.shape == (2, 3)
    if kind != "dense":
        assert torch.equal(A, torch.diag(torch.diagonal(A)))
    else:
        assert (A - torch.diag(torch.diagonal(A))).abs().max() > 0


def test_lds_signs_is_the_stu_papers_system():
    """Every |A_ii| = 0.9999, both signs present, unit-Gaussian B and C, diagonal D (paper-numbers 2.2)."""
    A, B, C, D = random_lds(400, 30, 30, "signs", 0.9999, torch.Generator().manual_seed(2))
    a = torch.diagonal(A)
    assert torch.equal(a.abs(), torch.full_like(a, 0.9999))
    assert 150 < (a > 0).sum() < 250
    for m in (B, C):  # unscaled: entry std 1, not 1 / sqrt(fan-in)
        assert m.std().item() == pytest.approx(1.0, abs=0.05) and m.mean().abs() < 0.05
    assert torch.equal(D, torch.diag(torch.diagonal(D))) and (torch.diagonal(D) != 0).all()
    _, _, _, D_wide = random_lds(4, 3, 2, "signs", 0.9999, torch.Generator().manual_seed(3))
    assert D_wide.shape == (2, 3) and torch.equal(D_wide[:, 2], torch.zeros(2))
    assert (torch.diagonal(D_wide) != 0).all()


def hand_loop(A, B, C, D, u):
    """y_t = C x_t + D u_t, x_{t+1} = A x_t + B u_t, x_0 = 0, one sequence u (L, d_input), in float64."""
    x = torch.zeros(A.shape[0], dtype=torch.float64)
    ys = []
    for t in range(u.shape[0]):
        ys.append(C @ x + D @ u[t])
        x = A @ x + B @ u[t]
    return torch.stack(ys)


@pytest.mark.parametrize("kind", ["diagonal", "dense", "signs"])
def test_lds_targets_follow_the_recurrence(kind):
    opts = dict(d_state=6, d_input=3, d_output=2, length=40, kind=kind, spectral_radius=0.95, seed=4)
    data = build_data("lds", **opts, **SMALL)
    assert data.info.task == "per_step_regression" and data.info.metric == "mse"
    assert (data.info.d_input, data.info.d_output, data.info.length) == (3, 2, 40)
    # the system of lds(seed=s) is random_lds(...) from the stream (s, "system")
    A, B, C, D = random_lds(6, 3, 2, kind, 0.95, stream_generator(4, "system"))
    for split in ("train", "test"):
        u, y = getattr(data, split)[2]
        assert u.shape == (40, 3) and y.shape == (40, 2)
        torch.testing.assert_close(y.double(), hand_loop(A, B, C, D, u.double()), rtol=1e-5, atol=1e-5)
    again = build_data("lds", **opts, **SMALL)
    assert torch.equal(again.val.tensors[1], data.val.tensors[1])
    assert not torch.equal(data.train.tensors[0][:3], data.val.tensors[0])
    other = build_data("lds", **{**opts, "seed": 5}, **SMALL)
    assert not torch.equal(other.train.tensors[1], data.train.tensors[1])


def test_lds_noise_and_explicit_system():
    A = np.array([[0.9, 0.2], [0.0, -0.5]])
    B, C, D = np.array([[1.0], [0.5]]), np.array([[1.0, -1.0]]), np.array([[0.3]])
    clean = lds_from_system(A, B, C, D, length=30, **SMALL)
    u, y = clean.train[1]
    torch.testing.assert_close(y.double(), hand_loop(*map(torch.tensor, (A, B, C, D)), u.double()))
    noisy = lds_from_system(A, B, C, D, length=30, noise=0.1, obs_noise=0.05, **SMALL)
    assert torch.equal(noisy.train.tensors[0], clean.train.tensors[0])  # same inputs, noise on top
    resid = noisy.train.tensors[1] - clean.train.tensors[1]
    assert 0.02 < resid.std() < 0.5
    twice = [lds_from_system(A, B, C, D, length=30, noise=0.1, **SMALL).train.tensors[1] for _ in range(2)]
    assert torch.equal(*twice)


def test_lds_bad_options_are_named():
    with pytest.raises(ValueError, match=r"spectral_radius must be in \(0, 1\)"):
        build_data("lds", spectral_radius=1.0, **SMALL)
    with pytest.raises(ValueError, match="kind must be one of"):
        build_data("lds", kind="banded", **SMALL)
    with pytest.raises(ValueError, match=r"C must have shape \(\?x2\)"):
        lds_from_system(np.eye(2), np.ones((2, 1)), np.ones((1, 3)), np.ones((1, 1)))
    with pytest.raises(ValueError, match="A must be square"):
        lds_from_system(np.ones((2, 3)), np.ones((2, 1)), np.ones((1, 2)), np.ones((1, 1)))
    with pytest.raises(ValueError, match=r"noise must be >= 0.0, got -1.0"):
        lds_from_system(np.eye(2), np.ones((2, 1)), np.ones((1, 2)), np.ones((1, 1)), noise=-1.0)
    with pytest.raises(ValueError, match="obs_noise must be a finite number, got inf"):
        lds_from_system(np.eye(2), np.ones((2, 1)), np.ones((1, 2)), np.ones((1, 1)), obs_noise=float("inf"))


# ------------------------------------------------------------------------------------ token tasks
def solve_copying(x, n_symbols):
    """Parse [symbols, blanks, delimiter, blanks]: the symbols before the first blank, and the answer
    steps, which are the last len(symbols) steps after the delimiter."""
    x = x.tolist()
    delim = x.index(n_symbols + 1)
    k = x.index(0)
    assert all(t == 0 for t in x[k:delim]) and all(t == 0 for t in x[delim + 1 :])
    assert len(x) - delim - 1 == k
    return x[:k]


def test_copying_answers_and_targets():
    x, s = copying_batch(50, n_symbols=8, n_memorize=10, delay=30, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, 50) and s.shape == (50, 10)
    for row, sym in zip(x, s):
        assert solve_copying(row, 8) == sym.tolist()
    data = build_data("copying", n_symbols=5, n_memorize=4, delay=12, **SMALL)
    info = data.info
    assert info.tokens and (info.d_input, info.d_output, info.length) == (7, 7, 20)
    assert info.task == "language_modeling"
    for i in range(len(data.test)):
        x, y = data.test[i]
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape == (20,)
        assert 0 <= x.min() and x.max() < 7
        answer = solve_copying(x, 5)
        assert y[-4:].tolist() == answer and (y[:-4] == 0).all()  # standard blank targets
    ignore = build_data("copying", n_symbols=5, n_memorize=4, delay=12, target="ignore", **SMALL)
    x, y = ignore.test[0]
    assert (
        torch.equal(x, data.test[0][0])
        and (y[:-4] == IGNORE).all()
        and torch.equal(y[-4:], data.test[0][1][-4:])
    )
    with pytest.raises(ValueError, match="target must be"):
        build_data("copying", target="zeros", **SMALL)


def test_selective_copying_answers():
    data = build_data("selective_copying", length=60, n_memorize=5, vocab=8, **SMALL)
    assert data.info.tokens and data.info.length == 60 and data.info.d_input == 8
    for split in ("train", "val", "test"):
        ds = getattr(data, split)
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.shape == y.shape == (60,) and 0 <= x.min() and x.max() < 8
            assert (x[-5:] == 7).all() and (x[:-5] != 7).all()  # markers only at the end
            data_tokens = [t for t in x[:-5].tolist() if t != 0]  # the hand solver: drop noise, keep order
            assert y[-5:].tolist() == data_tokens and (y[:-5] == IGNORE).all()
    x, _ = selective_copying_batch(200, 40, 4, 6, torch.Generator().manual_seed(0))
    first = (x[:, :36] != 0).float().argmax(1)
    assert first.float().std() > 2  # the tokens are scattered, not at fixed places
    with pytest.raises(ValueError, match="length must be >= 2 \\* n_memorize"):
        build_data("selective_copying", length=9, n_memorize=5, **SMALL)


def test_induction_heads_answers():
    x, a = induction_heads_batch(300, 20, 6, torch.Generator().manual_seed(0))
    for row, ans in zip(x.tolist(), a.tolist()):
        assert row.count(5) == 2 and row[-1] == 5  # the trigger twice, once at the end
        assert row[row.index(5) + 1] == ans  # the hand solver: the token after the first trigger
    data = build_data("induction_heads", length=20, vocab=6, **SMALL)
    info = data.info
    assert info.tokens and info.task == "classification" and (info.d_input, info.d_output) == (6, 6)
    x, y = data.val[1]
    assert x.shape == (20,) and y.shape == () and y.dtype == torch.long
    assert int(y) == x.tolist()[x.tolist().index(5) + 1] and 0 <= int(y) < 5
    with pytest.raises(ValueError, match="length must be >= 3"):
        build_data("induction_heads", length=2, **SMALL)


def test_associative_recall_answers():
    x, v = associative_recall_batch(300, 5, 8, 4, torch.Generator().manual_seed(0))
    assert x.shape == (300, 11)
    for row, val in zip(x.tolist(), v.tolist()):
        keys, values = row[0:-1:2], row[1:-1:2]
        assert len(set(keys)) == 5 and all(k < 8 for k in keys) and all(8 <= w < 12 for w in values)
        assert dict(zip(keys, values))[row[-1]] == val  # the hand solver: look the query up
    data = build_data("associative_recall", n_pairs=5, n_keys=8, n_values=4, **SMALL)
    assert data.info.length == 11 and data.info.d_input == data.info.d_output == 12
    x, y = data.test[3]
    assert int(y) == dict(zip(x[0:-1:2].tolist(), x[1:-1:2].tolist()))[int(x[-1])]
    with pytest.raises(ValueError, match="n_keys must be >= n_pairs"):
        build_data("associative_recall", n_pairs=9, n_keys=8, **SMALL)


@pytest.mark.parametrize("name", ["copying", "selective_copying", "induction_heads", "associative_recall"])
def test_token_tasks_are_deterministic_and_splits_differ(name):
    opts = {"copying": {"delay": 20}, "selective_copying": {"length": 50}}.get(name, {})
    a, b = build_data(name, **opts, **SMALL), build_data(name, **opts, **SMALL)
    assert torch.equal(split_x(a, "test"), split_x(b, "test"))
    assert not torch.equal(split_x(a, "train")[:3], split_x(a, "val"))
    c = build_data(name, **opts, **SMALL, seed=1)
    assert not torch.equal(split_x(a, "train"), split_x(c, "train"))


def test_trainer_loss_skips_ignored_targets():
    """language_modeling targets of -100 are not scored by the trainer's loss (cross_entropy's default)."""
    from lindy.train.metrics import loss_fn

    data = build_data("selective_copying", length=30, n_memorize=4, vocab=6, **SMALL)
    y = torch.stack([data.train[i][1] for i in range(4)])
    logits = torch.randn(4, 30, 6)
    loss = loss_fn("language_modeling", logits, y)
    scored = torch.nn.functional.cross_entropy(logits[:, -4:].reshape(-1, 6), y[:, -4:].reshape(-1))
    torch.testing.assert_close(loss, scored)
    logits[:, :-4] += 100 * torch.randn(4, 26, 6)  # unscored steps do not matter
    torch.testing.assert_close(loss_fn("language_modeling", logits, y), scored)


# ------------------------------------------------------------------------------------ fresh training data
@pytest.mark.parametrize("name", ["adding", "induction_heads", "selective_copying"])
def test_fresh_train_items_are_per_index_streams(name):
    opts = {"adding": {"length": 12}, "selective_copying": {"length": 40}}.get(name, {})
    fixed = build_data(name, **opts, n_train=50, n_val=5, n_test=5, seed=3)
    fresh = build_data(name, **opts, n_train=10**9, n_val=5, n_test=5, seed=3, fresh=True)
    assert isinstance(fresh.train, FreshDataset) and len(fresh.train) == 10**9
    # val and test are the same fixed sets
    assert torch.equal(split_x(fresh, "val"), split_x(fixed, "val"))
    # item i is a pure function of (seed, i): repeatable in any order, across copies and pickling
    items = [fresh.train[i] for i in (7, 3, 10**9 - 1)]
    copy = pickle.loads(pickle.dumps(fresh.train))
    for i, item in zip((7, 3, 10**9 - 1), items):
        assert all(torch.equal(p, q) for p, q in zip(item, copy[i]))
    assert not torch.equal(fresh.train[0][0], fresh.train[1][0])
    other = build_data(name, **opts, n_train=100, n_val=5, n_test=5, seed=4, fresh=True)
    assert not torch.equal(other.train[7][0], items[0][0])
    with pytest.raises(IndexError):
        fresh.train[10**9]


def test_fresh_adding_items_are_valid_problems():
    data = build_data("adding", length=16, n_train=1000, n_val=4, n_test=4, fresh=True)
    x0, y0 = data.train[5]
    assert x0.shape == (16, 2) and y0.shape == (1,)
    torch.testing.assert_close(y0[0], (x0[:, 0] * x0[:, 1]).sum())
    assert x0[:8, 1].sum() == 1 and x0[8:, 1].sum() == 1
    x1, y1 = adding_batch(1, 16, stream_generator(0, "fresh", 5))
    assert torch.equal(x0, x1[0]) and torch.equal(y0, y1[0])
    loader = torch.utils.data.DataLoader(data.train, batch_size=8, shuffle=False)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 16, 2) and torch.equal(xb[5], x0)
    with pytest.raises(ValueError, match="fresh must be true or false"):
        build_data("adding", fresh="yes")


# ------------------------------------------------------------------------------------ configs
SYNTHETIC = ["fhn", "lds", "copying", "selective_copying", "induction_heads", "associative_recall"]


@pytest.mark.parametrize("name", SYNTHETIC + ["adding"])
def test_data_config_options_are_builder_options(name):
    from omegaconf import OmegaConf

    from lindy.train.config import compose_config

    assert name in DATASETS
    cfg = OmegaConf.to_container(compose_config([f"data={name}"]).data, resolve=True)
    assert cfg.pop("name") == name
    small = {
        "fhn": {"length": 50, "t_end": 20.0, "cache": False},
        "lds": {"length": 20},
        "copying": {"delay": 20},
        "selective_copying": {"length": 60},
        "adding": {"length": 10},
    }.get(name, {})
    data = build_data(name, **{**cfg, **small, **SMALL})
    assert len(data.test) == 4


def test_lem_fhn_experiment_composes_and_builds():
    from lindy.data import TaskInfo
    from lindy.models import build_model
    from lindy.train.config import compose_config
    from lindy.train.loop import model_config

    cfg = compose_config(["experiment=lem/fhn"])
    assert cfg.name == "lem/fhn" and cfg.data.name == "fhn" and cfg.layer.name == "lem"
    assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == pytest.approx(9.04e-3)
    assert cfg.loader.batch_size == 32 and cfg.trainer.max_epochs == 400 and cfg.model.d_model == 16
    info = TaskInfo(d_input=1, d_output=1, length=25, task="per_step_regression", metric="rmse")
    model = build_model(model_config(cfg), info)  # pooling null: per_step_regression's head, "none"
    assert model(torch.randn(2, 25, 1)).shape == (2, 25, 1)
