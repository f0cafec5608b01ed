import pytest
import torch
from omegaconf import OmegaConf

from lindy.data.base import classification_info
from lindy.layers import S4D
from lindy.models import build_model
from lindy.train.config import compose_config
from lindy.train.loop import model_config
from lindy.train.optim import build_optimizer, build_scheduler, param_groups


def test_groups_follow_hints_and_rank():
    model = torch.nn.Sequential(S4D(4, d_state=4, lr=1e-3), torch.nn.LayerNorm(4))
    groups = {g["name"]: g for g in param_groups(model, lr=0.01, weight_decay=0.1)}
    ssm = groups["ssm(lr=0.001,wd=0)"]
    assert set(ssm["names"]) == {"0.log_dt", "0.log_A_real", "0.A_imag", "0.B"}
    assert ssm["weight_decay"] == 0.0 and ssm["lr"] == 1e-3
    assert set(groups["no_decay"]["names"]) == {"0.D", "0.output_linear.bias", "1.weight", "1.bias"}
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert set(groups["decay"]["names"]) == {"0.C", "0.output_linear.weight"}
    # the hinted lr is a cap: a smaller global lr is not raised
    small = {g["name"]: g for g in param_groups(model, lr=1e-4, weight_decay=0.1)}
    assert small["ssm(lr=0.0001,wd=0)"]["lr"] == 1e-4


def _hinted_model(hint: float) -> torch.nn.Module:
    return torch.nn.Sequential(S4D(4, d_state=4, lr=hint), torch.nn.Linear(4, 2))


def _lrs(optimizer) -> dict[str, float]:
    return {g["name"]: g["lr"] for g in optimizer.param_groups}


@pytest.mark.parametrize("hint_lr, ssm_lr", [("cap", 1e-3), ("absolute", 4e-3)])
def test_hint_lr_caps_or_uses_the_hint_as_is(hint_lr, ssm_lr):
    """DeepLDNN's psmnist trains C at 4e-3 under a global 1e-3: only "absolute" does so."""
    cfg = OmegaConf.create(dict(name="adamw", lr=1e-3, weight_decay=0.01, hint_lr=hint_lr))
    lrs = _lrs(build_optimizer(_hinted_model(4e-3), cfg))
    assert lrs == {f"ssm(lr={ssm_lr:g},wd=0)": ssm_lr, "no_decay": 1e-3, "decay": 1e-3}
    # a hint below the global lr is the group's lr either way
    assert _lrs(build_optimizer(_hinted_model(1e-4), cfg))["ssm(lr=0.0001,wd=0)"] == 1e-4


def test_hint_lr_defaults_to_cap_and_refuses_other_values():
    cfg = OmegaConf.create(dict(name="adam", lr=1e-3))
    assert _lrs(build_optimizer(_hinted_model(4e-3), cfg))["ssm(lr=0.001,wd=0)"] == 1e-3
    for bad in ("max", "Absolute", None, True):
        cfg.hint_lr = bad
        with pytest.raises(ValueError, match=r"optimizer\.hint_lr must be one of \['cap', 'absolute'\]"):
            build_optimizer(_hinted_model(4e-3), cfg)


def test_ldnn_psmnist_trains_C_above_the_global_lr_as_deepldnn():
    cfg = compose_config(["experiment=ldnn/psmnist"])
    model = build_model(model_config(cfg), classification_info(1, 10, 784))
    groups = build_optimizer(model, cfg.optimizer).param_groups
    c = [g for g in groups if any(n.endswith(".C") for n in g["names"])]
    assert [g["lr"] for g in c] == [0.004] and cfg.optimizer.lr == 0.001


@pytest.mark.parametrize("name", ["constant", "cosine", "multistep", "plateau"])
def test_schedules_scale_every_group_alike(name):
    """An absolute hint above the global lr keeps its ratio to it through every schedule."""
    opt_cfg = OmegaConf.create(dict(name="sgd", lr=1e-3, hint_lr="absolute"))
    optimizer = build_optimizer(_hinted_model(4e-3), opt_cfg)
    cfg = OmegaConf.create(dict(name=name, warmup_steps=2, milestones=[2], gamma=0.5, patience=0))
    sched = build_scheduler(optimizer, cfg, total_steps=8)
    seen = set()
    for _ in range(5):
        optimizer.step()
        sched.step(1.0) if name == "plateau" else sched.step()
        lrs = _lrs(optimizer)
        seen.add(lrs["decay"])
        assert lrs["ssm(lr=0.004,wd=0)"] == pytest.approx(4 * lrs["decay"])
        assert lrs["no_decay"] == lrs["decay"]
    assert (seen == {1e-3}) if name == "constant" else (len(seen) > 1)  # the schedule moved the lr


@pytest.mark.parametrize("name", ["constant", "cosine", "multistep", "plateau"])
def test_schedules(name):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = OmegaConf.create(dict(name=name, warmup_steps=2, milestones=[3], gamma=0.5, patience=0))
    sched = build_scheduler(opt, cfg, total_steps=10)
    first = opt.param_groups[0]["lr"]
    lrs = []
    for _ in range(6):
        opt.step()
        sched.step(1.0) if name == "plateau" else sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    if name == "constant":
        assert lrs == [1.0] * 6
    elif name == "cosine":
        assert first == 0.5 and lrs[:2] == [1.0, 1.0]  # linear warm-up over 2 steps
        assert all(a > b for a, b in zip(lrs[1:], lrs[2:]))  # then cosine decay
    elif name == "multistep":
        assert lrs[:2] == [1.0, 1.0] and lrs[3] == 0.5
    else:
        assert lrs[-1] < 1.0


def test_multistep_milestones_in_epochs_count_epochs():
    """unit=epoch: LEM's "lr/10 at epoch 100" must not fire at step 100 (it did, before this test)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = OmegaConf.create(dict(name="multistep", unit="epoch", milestones=[2], gamma=0.1, warmup_steps=0))
    sched = build_scheduler(opt, cfg, total_steps=100, steps_per_epoch=5)
    lrs = []
    for _ in range(12):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:9] == [1.0] * 9 and lrs[9] == pytest.approx(0.1)  # after 2 epochs = 10 steps
    bad = OmegaConf.create(dict(name="multistep", unit="batch", milestones=[2], gamma=0.1))
    with pytest.raises(ValueError, match="scheduler.unit must be one of"):
        build_scheduler(opt, bad, total_steps=10)
