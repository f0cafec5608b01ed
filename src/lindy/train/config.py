"""Compose an experiment's config from the Hydra tree shipped in ``lindy/configs``, and translate it.

Hydra's compose API is used (no working-directory change, no outputs/ folder): ``compose_config(["experiment=
lem/smnist", "trainer.max_epochs=5"])``. Unknown group values fail at once with Hydra's message, which
names the valid choices; unknown keys with the closest valid one (``lindy.train.keys``). ``model_config``
turns a composed config into ``build_model``'s arguments, ``resolve_device`` and ``set_up_torch`` into the
process settings a run (or ``lindy eval``) starts with.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="lindy.configs", version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def list_experiments() -> list[str]:
    return group_options("experiment")


def group_options(group: str) -> list[str]:
    """The config names available in a group folder (e.g. "experiment", "data")."""
    root = CONFIG_DIR / group
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def explain(error: Exception) -> str:
    """Hydra's message, plus the valid choices when a group value was not found (Hydra omits them for a
    group that has a default, such as ``experiment``)."""
    import re

    message = str(error)
    found = re.search(r"Could not find '([\w/]+?)/([^']+)'", message)
    if found and "Available options" not in message:
        group = found.group(1)
        options = group_options(group)
        if options:
            message += f"\nAvailable options in '{group}':\n" + "\n".join(f"\t{o}" for o in options)
    return message


def model_config(cfg: DictConfig) -> dict:
    """The model's arguments: cfg.model plus, for a SequenceModel, the layer group (name + its kwargs).

    A model kind without a layer (``model.kind: sdn``) takes cfg.model alone.
    """
    model = OmegaConf.to_container(cfg.model, resolve=True)
    if model.get("kind", "sequence") != "sequence":
        return {k: v for k, v in model.items() if v is not None}
    layer = OmegaConf.to_container(cfg.layer, resolve=True)
    model["layer"] = layer.pop("name")
    model["layer_kwargs"] = layer
    return {k: v for k, v in model.items() if v is not None}


def resolve_device(name: str) -> str:
    """``trainer.device``: "auto" is CUDA when there is one, else CPU; any other name is kept."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def set_up_torch(cfg: DictConfig) -> None:
    """Threads, the global seed (model init, dropout) and deterministic kernels, before anything is built."""
    from lindy.train.settings import read_settings

    s = read_settings(cfg)  # each value checked, naming its key
    if s.threads:
        torch.set_num_threads(s.threads)  # the thread count changes float sums: part of the numbers
    torch.manual_seed(s.seed)
    if s.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
