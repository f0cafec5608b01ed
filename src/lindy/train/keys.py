"""Unknown configuration keys fail, naming the closest valid key (``difflib``).

Hydra refuses ``trainer.max_epoch=3`` (a key the config lacks) but accepts ``+trainer.max_epoch=3`` and any
extra key an experiment file sets, and ignores them. ``check_known_keys`` compares a composed config with
what each part accepts:

    top level, trainer, loader, optimizer, scheduler: the keys of the shipped YAML files of that group
    model: SequenceModel's keyword arguments; layer, data: the registered constructor's keyword arguments

``suggest`` turns a Hydra "Could not override" message into one naming the closest key instead of the hint
to append it with ``+`` (which makes a typo pass silently).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

from lindy.train.config import CONFIG_DIR

TOP_LEVEL = ("name", "seed", "loader", "model", "layer", "data", "optimizer", "scheduler", "trainer")
GROUPS_FROM_YAML = ("trainer", "optimizer", "scheduler")


def flat_keys(tree, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf of a nested dict (lists are leaves)."""
    if not isinstance(tree, dict):
        return [prefix[:-1]] if prefix else []
    if not tree and prefix:
        return [prefix[:-1]]
    keys = []
    for k, v in tree.items():
        keys += flat_keys(v, f"{prefix}{k}.")
    return keys


def closest(key: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or a list of them when none is close."""
    valid = sorted(set(valid))
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if match:
        return f"did you mean {match[0]!r}?"
    return f"valid keys: {', '.join(valid)}"


def _yaml_keys(group: str) -> set[str]:
    keys: set[str] = set()
    for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
        keys |= set(OmegaConf.to_container(OmegaConf.load(path)))
    return keys


def _signature_keys(fn) -> set[str] | None:
    """Keyword arguments ``fn`` accepts; None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.name != "self"}


def valid_keys(part: str, name: str | None = None) -> set[str] | None:
    """The keys ``part`` of the config accepts (``name``: the layer's or data set's name)."""
    if part in GROUPS_FROM_YAML:
        return _yaml_keys(part)
    if part == "loader":
        return set(OmegaConf.load(CONFIG_DIR / "config.yaml").loader)
    if part == "model":
        from lindy.models import SequenceModel

        keys = _signature_keys(SequenceModel.__init__)
        from_data = {"d_input", "d_output", "tokens", "layer", "layer_kwargs"}
        return None if keys is None else (keys - from_data) | _yaml_keys("model")
    if part == "layer":
        from lindy.layers.base import LAYERS

        spec = LAYERS.get(str(name).lower())
        keys = None if spec is None else _signature_keys(spec.factory.__init__)
        return None if keys is None else (keys - {"d_model"}) | {"name"}
    if part == "data":
        import lindy.data  # noqa: F401  (registers every data set)
        from lindy.data.base import DATASETS

        builder = DATASETS.get(name)
        keys = None if builder is None else _signature_keys(builder)
        return None if keys is None else keys | {"name"}
    raise KeyError(part)


def check_known_keys(cfg: DictConfig, overrides: Iterable[str] = ()) -> None:
    """Raise ValueError for the first key of ``cfg`` that no part accepts, naming the closest valid key
    and where it came from (the command line when an override names it, else the experiment's files)."""
    given = {_override_key(o) for o in overrides}
    chosen = [o.split("=", 1)[1] for o in overrides if _override_key(o) == "experiment" and "=" in o]
    source = f"experiment={chosen[-1]}" if chosen else "the default experiment"
    container = OmegaConf.to_container(cfg, resolve=False)
    for key in container:
        if key not in TOP_LEVEL:
            _unknown(key, TOP_LEVEL, given, source)
    for part in TOP_LEVEL:
        section = container.get(part)
        if not isinstance(section, dict):
            continue
        valid = valid_keys(part, section.get("name"))
        if valid is None:  # an unregistered layer or data set: its builder names itself
            continue
        for key in section:
            if key not in valid:
                _unknown(f"{part}.{key}", [f"{part}.{v}" for v in valid], given, source)


def _unknown(key: str, valid: Iterable[str], given: set[str], source: str) -> None:
    where = "on the command line" if key in given else f"in the config files of {source}"
    raise ValueError(f"unknown config key {key!r} ({where}); {closest(key, valid)}")


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def suggest(message: str, overrides: list[str]) -> str:
    """Hydra's "Could not override 'k'" message with the closest valid key instead of its ``+k`` hint."""
    found = re.search(r"Could not override '([^']+)'", message)
    if not found:
        return message
    key = found.group(1)
    from lindy.train.config import compose_config

    others = [o for o in overrides if _override_key(o) != key]
    try:
        cfg = compose_config(others)
    except Exception:  # another override is broken too: suggest from the defaults
        cfg = compose_config([])
    valid = flat_keys(OmegaConf.to_container(cfg, resolve=False))
    valid += [v.rsplit(".", 1)[0] for v in valid if "." in v]  # sections too (``trainer``)
    return f"unknown config key {key!r} (on the command line); {closest(key, valid)}"
