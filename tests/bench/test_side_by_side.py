"""benchmarks/side_by_side.py: the reference and lindy models of a family start alike and train alike.

The reference layers come from the reference harness's cache (../shared/bench-references/.cache, filled by
its extract.sh), which CI does not have: those tests skip there. Tiny shapes, random data, two steps.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "side_by_side.py"


@pytest.fixture(scope="module")
def sbs(script_loader):
    return script_loader(SCRIPT, "side_by_side_under_test")


def test_missing_cache_names_the_extract_command(sbs, tmp_path):
    with pytest.raises(sbs.ReferenceMissing, match="extract.sh"):
        sbs.load_harness(tmp_path / ".cache", "ldnn")


# In a subprocess: loading DeepLDNN through the harness patches torch for the whole process (Tensor.cuda the
# identity, device="cuda" -> "cpu" in torch.zeros & co.), which no other test should run under.
CHECK = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("side_by_side_under_test", sys.argv[1])
sbs = importlib.util.module_from_spec(spec); spec.loader.exec_module(sbs)
family, cache = sys.argv[2], sbs.DEFAULT_CACHE.resolve()
try:
    sbs.load_harness(cache, family)
except sbs.ReferenceMissing as err:
    print("SKIP", err); raise SystemExit(0)
ref, ours, _ = sbs.build_pair(family, cache, seed=0, d_in=1, width=8, n_layers=1, classes=3)
gen = torch.Generator().manual_seed(0)
x, y = torch.rand(6, 16, 1, generator=gen), torch.randint(0, 3, (6,), generator=gen)
check = sbs.start_check(ref, ours, x, y, tol=1e-4)
assert check["ok"], check
order = sbs.batch_order(len(x), 3, 2, seed=0)
runs = [sbs.train(m, x, y, order, lr=1e-2, weight_decay=0.01) for m in (ref, ours)]
assert runs[0]["groups"] == runs[1]["groups"]  # same lr / weight decay on the same number of scalars
assert sbs.lockstep(runs[0]["losses"], runs[1]["losses"]) == 2
print("OK")
"""


@pytest.mark.parametrize("family", ["spiking_ssm", "ldnn"])
def test_same_start_then_same_steps(family):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-c", CHECK, str(SCRIPT), family]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if proc.stdout.startswith("SKIP"):
        pytest.skip(f"no reference cache: {proc.stdout[5:].strip()}")
    assert proc.stdout.strip().endswith("OK"), proc.stdout
