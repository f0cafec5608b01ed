import pytest
import torch

# a tiny experiment: the adding problem at length 20, one small S4D block, dropout on (so that resume
# must restore the RNG), 8 optimiser steps per epoch
TINY = [
    "data=adding",
    "data.length=20",
    "data.n_train=64",
    "data.n_val=32",
    "data.n_test=32",
    "model.d_model=8",
    "model.n_layers=1",
    "model.dropout=0.1",
    "layer.d_state=4",
    "loader.batch_size=8",
    "loader.eval_batch_size=16",
    "optimizer.lr=0.01",
    "trainer.max_epochs=2",
    "trainer.tensorboard=false",
    "trainer.threads=1",
    "name=tiny",
]


@pytest.fixture(scope="session")
def tiny():
    return tuple(TINY)  # a tuple, so no test can change what the others get


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """For a trainer run in this process: restore torch's global settings that its set-up changes
    (threads, seed, deterministic kernels) and work in an empty folder."""
    monkeypatch.chdir(tmp_path)
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
