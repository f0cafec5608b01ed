"""``experiment=sdn/lif`` and its tau-0.2 twin compose SDN's recipe and train the bare SDN through the CLI."""

import json
import math

import torch

from lindy.layers import SDN
from lindy.train.checkpoint import load_checkpoint
from lindy.train.config import compose_config
from lindy.train.keys import check_known_keys


def test_sdn_experiments_compose_the_reference_recipe():
    for name, tau in [("sdn/lif", 0.125), ("sdn/lif_tau0.2", 0.2)]:
        cfg = compose_config([f"experiment={name}"])
        check_known_keys(cfg)
        assert cfg.name == name and cfg.model.kind == "sdn" and cfg.data.name == "lif" and cfg.data.tau == tau
        assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.weight_decay) == ("adamw", 0.01, 0.01)
        assert cfg.scheduler.name == "cosine" and cfg.loader.batch_size == 64
        assert (cfg.data.n_train, cfg.data.n_val) == (45000, 5000)  # 10 % of 50,000 held out


def test_sdn_lif_trains_two_steps_through_the_cli(tmp_path, lindy_cli):
    run = tmp_path / "sdn"
    args = [
        "experiment=sdn/lif",
        "data.length=32",
        "data.n_train=128",
        "data.n_val=16",
        "data.n_test=16",
        "trainer.max_steps=2",
        "trainer.tensorboard=false",
        "trainer.threads=1",
        f"trainer.run_dir={run}",
    ]
    lindy_cli(args, check=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["experiment"] == "sdn/lif" and summary["steps"] == 2
    assert summary["metric"] == "spike_agreement" and summary["parameters"] == 193
    assert 0.0 <= summary["test"]["spike_agreement"] <= 1.0 and math.isfinite(summary["test"]["loss"])
    assert "sparsity" not in summary  # the SDN is no spiking layer

    state = load_checkpoint(run / "best.pt")
    assert state["model_config"]["kind"] == "sdn"
    assert {k for k in state["model"] if not k.startswith("sdn.")} == set()  # the bare SDN, nothing else
    sdn = SDN()
    sdn.load_state_dict({k.removeprefix("sdn."): v for k, v in state["model"].items()})
    fused = sdn.eval().fused()  # the form lindy ships (SDN.pretrained)
    assert sum(p.numel() for p in fused.parameters()) == 153
    x = torch.randn(2, 32)
    torch.testing.assert_close(fused(x), sdn(x), rtol=1e-5, atol=1e-5)
