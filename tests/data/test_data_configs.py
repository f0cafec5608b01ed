"""The data configs say what the builders say.

Every ``configs/data/*.yaml`` names a registered data set and has exactly its builder's keyword arguments
(``inspect.signature(DATASETS[name])``) with the same defaults, so that ``data.<key>=...`` works for every
option without Hydra's ``+`` and a config never silently disagrees with the Python default. The trainer
supplies no data key of its own: ``train/loop.py`` passes the composed ``data`` group to ``build_data`` as
it is, so ``root``, ``seed``, ``cache`` and ``cache_dir`` belong in the YAML too.

The one exception is a variant config: a second YAML for a builder whose point is a different default
(``VARIANTS``, e.g. ``pathx.yaml``: the pathfinder builder at resolution 128). It must still list every key.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

import lindy
from lindy.data import DATASETS

DATA_CONFIGS = sorted((Path(lindy.__file__).parent / "configs" / "data").glob("*.yaml"))
VARIANTS = {"pathx": {"resolution": 128}}  # config stem -> the keys it sets away from the builder's default


def _load(path: Path) -> dict:
    cfg = yaml.safe_load(path.read_text())
    assert isinstance(cfg, dict) and "name" in cfg, f"{path.name}: a mapping with a 'name' key expected"
    return cfg


def _options(name: str) -> dict[str, inspect.Parameter]:
    params = inspect.signature(DATASETS[name]).parameters
    loose = [p.name for p in params.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert not loose, f"builder {name!r} takes *{loose}: a config cannot list its options"
    return dict(params)


@pytest.mark.parametrize("path", DATA_CONFIGS, ids=[p.stem for p in DATA_CONFIGS])
def test_config_has_exactly_the_builders_keywords_and_defaults(path):
    cfg = _load(path)
    name = cfg.pop("name")
    assert name in DATASETS, f"{path.name}: name {name!r} is not a registered data set"
    params = _options(name)
    missing, unknown = sorted(set(params) - set(cfg)), sorted(set(cfg) - set(params))
    assert not missing, f"{path.name} lacks the builder keywords {missing} (data.<key>= would need '+')"
    assert not unknown, f"{path.name} sets {unknown}, which builder {name!r} does not take"
    variant = VARIANTS.get(path.stem, {})
    for key, value in cfg.items():
        want = variant.get(key, params[key].default)
        assert value == want and type(value) is type(want), (
            f"{path.name}: {key}: {value!r}, but the builder's default is {params[key].default!r}"
        )


def test_every_registered_data_set_has_a_config():
    named = {_load(p)["name"] for p in DATA_CONFIGS}
    assert sorted(set(DATASETS) - named) == []


def test_variants_name_real_configs_and_real_keys():
    stems = {p.stem: p for p in DATA_CONFIGS}
    for stem, keys in VARIANTS.items():
        assert stem in stems
        params = _options(_load(stems[stem])["name"])
        assert all(params[k].default != v for k, v in keys.items()), f"{stem}: not a variant any more"
