"""Shared test helpers: one way to run a lindy command in a subprocess."""

import os
import subprocess
import sys

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
