"""Numbers the trainer must not trust blindly: NaN validation scores, corrupt checkpoints, non-finite
gradients (named by group), fp16 with a gradient scaler, micro-batches weighted by their sizes.

The runs here are tiny trainers in this process (``isolated`` restores torch's global settings)."""

import pytest
import torch
from torch.utils.data import Dataset

from lindy.train.checkpoint import load_checkpoint, save_atomic
from lindy.train.config import compose_config
from lindy.train.loop import NonFiniteLossError, NonFiniteMetricError, Trainer


def trainer(tiny, run_dir, *overrides):
    return Trainer(compose_config([*tiny, f"trainer.run_dir={run_dir}", *overrides]))


class NaNTarget(Dataset):
    """``base`` with the target of item ``bad`` replaced by NaN."""

    def __init__(self, base, bad):
        self.base, self.bad = base, bad

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return x, (torch.full_like(y, float("nan")) if i == self.bad else y)


def test_a_nan_validation_metric_stops_the_run_and_is_never_a_score(tiny, tmp_path, isolated):
    t = trainer(tiny, tmp_path / "run")
    t.data.val = NaNTarget(t.data.val, bad=5)
    with pytest.raises(NonFiniteMetricError, match=r"validation mse nan .* at step 8 .*not a score") as err:
        t.fit()
    assert "no checkpoint has been written yet" in str(err.value)
    assert not (tmp_path / "run" / "best.pt").exists()  # a NaN never became the best score
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_a_checkpoint_with_flipped_payload_bytes_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    weights = torch.linspace(-1, 1, 300)
    save_atomic({"model": {"w": weights}, "progress": {"step": 3}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], weights)
    assert "checksum" not in load_checkpoint(path)
    data = bytearray(path.read_bytes())
    data[data.find(weights.numpy().tobytes()) + 41] ^= 0x01  # still a finite float: garbage, not NaN
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"last\.pt is corrupt: the checksum of its contents does not match"):
        load_checkpoint(path)
    # a checkpoint from before checksums loads as it did
    torch.save({"model": {"w": weights}}, tmp_path / "old.pt")
    assert torch.equal(load_checkpoint(tmp_path / "old.pt")["model"]["w"], weights)


def test_non_finite_gradients_name_only_the_groups_that_have_them(tiny, tmp_path, isolated):
    """With grad_clip on, a NaN in one group's gradient must be reported before clipping spreads it."""
    t = trainer(tiny, tmp_path / "run", "trainer.grad_clip=1.0", "model.dropout=0.0")
    decay = next(g for g in t.optimizer.param_groups if g["name"] == "decay")
    decay["params"][0].register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradients at step 1") as err:
        t.fit()
    message = str(err.value)
    assert f"decay ['{decay['names'][0]}']" in message
    assert "no_decay" not in message and "ssm(" not in message
    assert "no checkpoint has been written yet" in message


def test_fp16_trains_with_a_gradient_scaler(tiny, tmp_path, isolated):
    t = trainer(tiny, tmp_path / "run", "trainer.precision=fp16", "trainer.max_epochs=1")
    t.fit()
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["scaler"]["scale"] > 0 and state["progress"]["step"] == 8
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in state["model"].values())


def test_micro_batches_are_weighted_by_their_sizes(tiny, tmp_path, isolated):
    """accumulate=3 over a batch of 8 (3 + 3 + 2 examples) takes the whole batch's step."""
    args = ["model.dropout=0.0", "trainer.max_epochs=1", "trainer.max_steps=3"]
    trainer(tiny, tmp_path / "one", *args).fit()
    trainer(tiny, tmp_path / "acc", *args, "trainer.accumulate=3").fit()
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    acc = load_checkpoint(tmp_path / "acc" / "last.pt")
    for name, tensor in one["model"].items():
        torch.testing.assert_close(acc["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)
