"""Metrics of a model on one split: the trainer's validation and test, and ``lindy eval``.

``evaluate`` runs the model in eval mode over this rank's shard of the split and sums (loss * n, correct,
n) across ranks, so W processes give the numbers one would. For a model with spiking layers (SpikingSSM)
it also reports, under "sparsity", each layer's firing rate over the split, the network sparsity
1 - rate and the energy estimate of ``lindy.layers.spiking_ssm.sparsity_from_rates``; other models get
no such key. ``evaluate_checkpoint`` rebuilds data and model
from a checkpoint alone and calls it; it writes nothing (no run folder, no config.yaml, no logger).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from lindy.layers.spiking_ssm import sparsity_from_rates, spiking_layers
from lindy.train.batches import eval_loader
from lindy.train.metrics import MetricSum


def autocast(device: torch.device, precision: str):
    """bf16 autocast when ``trainer.precision=bf16``; a no-op context for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class FiringRates:
    """Firing rate of each spiking layer over many batches, the mean over every spike (example, step,
    feature), kept as sums that reduce exactly across ranks.

    ``totals``: per layer (sum_b w_b r_b, sum_b w_b) with w_b = n_b L_b (batch b: n_b examples of L_b steps,
    the layer's rate r_b; w_b = 0 where the layer did not run), then (sum_b n_b L_b, sum_b n_b), whose
    ratio is the mean length the energy per example is computed at.
    """

    def __init__(self, model: nn.Module, device):
        self.layers = spiking_layers(model)
        self.totals = torch.zeros(2 * len(self.layers) + 2, dtype=torch.float64, device=device)

    def __bool__(self) -> bool:
        return bool(self.layers)

    def clear(self) -> None:
        for m in self.layers.values():
            m.firing_rate = None  # a layer the next forward skips must not count the previous rate again

    def update(self, batch: int, length: int) -> None:
        w = float(batch * length)
        parts = []
        for m in self.layers.values():
            if m.firing_rate is None:
                parts.append(self.totals.new_zeros(2))
            else:
                r = m.firing_rate.detach().to(self.totals)
                parts.append(torch.stack([r * w, self.totals.new_tensor(w)]))
        parts.append(self.totals.new_tensor([w, float(batch)]))
        self.totals += torch.cat(parts)

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.totals)

    def result(self) -> dict:
        """``sparsity_from_rates`` of the accumulated rates: firing_rate per layer, sparsity, energies."""
        t = self.totals.tolist()
        rates = {name: t[2 * i] / t[2 * i + 1] for i, name in enumerate(self.layers) if t[2 * i + 1] > 0}
        return sparsity_from_rates(self.layers, rates, t[-2] / max(t[-1], 1.0))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    info,
    *,
    batch: int,
    device: torch.device,
    precision: str = "fp32",
    workers: int = 0,
    world: int = 1,
    rank: int = 0,
) -> dict[str, float]:
    """{"loss": mean loss, info.metric: its value} of ``model`` on ``dataset`` (``info``: its TaskInfo),
    and "sparsity" (see the module docstring) when ``model`` has spiking layers.

    Leaves ``model`` in eval mode and draws nothing from torch's global RNG.
    """
    model.eval()
    sums = MetricSum(info.task, info.metric, device, loss=info.loss)
    rates = FiringRates(model, device)
    for x, y in eval_loader(dataset, batch, world, rank, workers):
        x, y = x.to(device), y.to(device)
        rates.clear()
        with autocast(device, precision):
            out = model(x)
        sums.update(out, y, x)
        if rates:
            rates.update(x.shape[0], x.shape[1])
    sums.all_reduce()
    result = sums.result()
    if rates:
        rates.all_reduce()
        result["sparsity"] = rates.result()
    return result


def check_overrides(cfg, overrides) -> list[str]:
    """``key=value`` overrides of ``lindy eval``, each naming a key the checkpoint's config has (an unknown
    one fails naming the closest); a leading ``+`` is not needed and not allowed to add keys."""
    from omegaconf import OmegaConf

    from lindy.train.keys import closest, flat_keys

    valid = flat_keys(OmegaConf.to_container(cfg, resolve=False))
    out = []
    for o in overrides:
        key, eq, value = o.partition("=")
        if not eq or not key:
            raise ValueError(f"lindy eval: overrides are key=value, got {o!r}")
        key = key.lstrip("+")
        if key not in valid:
            raise ValueError(f"unknown config key {key!r} (a lindy eval override); {closest(key, valid)}")
        out.append(f"{key}={value}")
    return out


def evaluate_checkpoint(path: str | Path, split: str = "test", overrides: list[str] = ()) -> dict[str, float]:
    """Metrics of the checkpoint at ``path`` on ``split``, built from its own config (plus dotlist
    ``overrides``, e.g. ``data.root=/data``) with the same threads, seed and precision as its run."""
    from omegaconf import OmegaConf

    from lindy.data import build_data
    from lindy.models import build_model
    from lindy.train.checkpoint import load_checkpoint
    from lindy.train.config import model_config, resolve_device, set_up_torch

    state = load_checkpoint(path)
    base = OmegaConf.create(state["config"])
    cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(check_overrides(base, overrides)))
    set_up_torch(cfg)  # checks the settings it reads, naming the key
    device = torch.device(resolve_device(cfg.trainer.device))
    data = build_data(**OmegaConf.to_container(cfg.data, resolve=True))
    model = build_model(model_config(cfg), data.info).to(device)
    model.load_state_dict(state["model"])
    return evaluate(
        model,
        getattr(data, split),
        data.info,
        batch=cfg.loader.eval_batch_size,
        device=device,
        precision=cfg.trainer.precision,
        workers=cfg.loader.num_workers,
    )
