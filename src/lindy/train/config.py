"""Compose an experiment's config from the Hydra tree shipped in ``lindy/configs``.

Hydra's compose API is used (no working-directory change, no outputs/ folder): ``compose_config(["experiment=
lem/smnist", "trainer.max_epochs=5"])``. Unknown keys and group values fail at once with Hydra's message,
which names the valid choices.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

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
