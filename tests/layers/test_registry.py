"""The registry is complete and the layer configs say what the constructors say.

- every module in ``lindy/layers/`` (but ``base``) registers a layer, and ``import lindy.layers`` imports
  it: a forgotten import in ``layers/__init__.py`` would silently drop a layer from the conformance suite;
- every ``configs/layer/*.yaml`` names a registered layer and has exactly its constructor's keyword
  arguments with the same defaults (a missing key would need Hydra's ``+`` to be set at all).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import lindy.layers
from lindy.layers.base import LAYERS

NOT_LAYER_FILES = {"base"}  # the contract itself
MODEL_SUPPLIED = {"d_model", "d_input"}  # the backbone passes these; a layer config must not
LAYER_CONFIGS = sorted((Path(lindy.__file__).parent / "configs" / "layer").glob("*.yaml"))


def _layer_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(lindy.layers.__path__) if not m.ispkg]
    return sorted(n for n in names if n not in NOT_LAYER_FILES)


@pytest.mark.parametrize("module", _layer_modules())
def test_every_layer_module_registers_a_layer(module):
    full = f"lindy.layers.{module}"
    importlib.import_module(full)
    defined_here = [name for name, spec in LAYERS.items() if spec.factory.__module__ == full]
    assert defined_here, f"{full} registers no layer (call register_layer at the bottom of the file)"


def test_import_lindy_layers_imports_every_layer_module():
    code = (
        "import sys, lindy.layers; print(' '.join(m for m in sys.modules if m.startswith('lindy.layers.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    imported = {m.rsplit(".", 1)[1] for m in out.split()}
    missing = sorted(set(_layer_modules()) - imported)
    assert not missing, f"lindy/layers/__init__.py does not import {missing}: they are never registered"


def test_the_registry_names_only_layer_classes():
    for name, spec in LAYERS.items():
        assert name == name.lower() and spec.name == name
        assert isinstance(spec.bench_kwargs, dict) and isinstance(spec.exact_recurrence, bool)


def test_register_layer_works_as_a_call_and_as_a_decorator(monkeypatch):
    monkeypatch.setattr(lindy.layers.base, "LAYERS", dict(LAYERS))
    from lindy.layers.base import SequenceLayer, register_layer

    class A(SequenceLayer):
        pass

    assert register_layer("toy_a", A, exact_recurrence=False) is A
    assert lindy.layers.base.LAYERS["toy_a"].exact_recurrence is False

    @register_layer("toy_b", differentiable=False)
    class B(SequenceLayer):
        pass

    assert (
        lindy.layers.base.LAYERS["toy_b"].factory is B
        and not lindy.layers.base.LAYERS["toy_b"].differentiable
    )
    with pytest.raises(ValueError, match="already registered"):
        register_layer("toy_a", B)


@pytest.mark.parametrize("path", LAYER_CONFIGS, ids=[p.stem for p in LAYER_CONFIGS])
def test_layer_config_matches_the_constructor(path):
    config = OmegaConf.to_container(OmegaConf.load(path))
    name = config.pop("name", None)
    assert name in LAYERS, f"{path.name}: name {name!r} is not a registered layer ({sorted(LAYERS)})"
    signature = inspect.signature(LAYERS[name].factory.__init__)
    defaults = {
        k: p.default
        for k, p in signature.parameters.items()
        if p.kind is p.KEYWORD_ONLY and k not in MODEL_SUPPLIED
    }
    assert set(config) == set(defaults), (
        f"{path.name}: keys missing {sorted(set(defaults) - set(config))}, "
        f"unknown {sorted(set(config) - set(defaults))}"
    )
    for key, default in defaults.items():
        assert config[key] == default and type(config[key]) is type(default), (
            f"{path.name}: {key} is {config[key]!r}, the constructor's default is {default!r}"
        )


def test_every_registered_layer_has_a_config():
    stems = {p.stem for p in LAYER_CONFIGS}
    assert set(LAYERS) <= stems, f"no configs/layer/<name>.yaml for {sorted(set(LAYERS) - stems)}"
