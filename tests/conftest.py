"""Shared test helpers: one way to run a lindy command in a subprocess, one way to load a script."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_lindy(args, *, module="lindy.train", launcher=None, check=False, timeout=300):
    """Run ``python [launcher] -m module ARGS``; ``check=True`` fails the test with its output."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *(launcher or []), "-m", module, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def lindy_cli():
    """Run ``python -m lindy.train`` (or another module) in a subprocess: ``lindy_cli(args, ...)``."""
    return run_lindy


def load_script(path: Path, name: str):
    """Import the file at ``path`` (a benchmark script, another test file) as module ``name``.

    The module is registered in ``sys.modules`` first: dataclasses in it look themselves up there.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def script_loader():
    """Load a file that is not on the import path as a module: ``script_loader(path, name)``."""
    return load_script
