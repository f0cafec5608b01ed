"""The reference-harness plugin (benchmarks/reference_cases.py) registers valid cases that build and run.

The harness (../shared/bench-references/bench_anchors.py, beside the checkout) is not part of lindy: the
test skips without it. With it, every lindy case must point at a reference family the harness registers,
ids must be unique, and each distinct lindy builder runs forward and forward+backward at a tiny shape
(no reference code and no timing here).
"""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT.parent / "shared" / "bench-references" / "bench_anchors.py"
PLUGIN = ROOT / "benchmarks" / "reference_cases.py"


@pytest.fixture(scope="module")
def harness(script_loader):
    if not HARNESS.is_file():
        pytest.skip(f"reference harness not found at {HARNESS}")
    return script_loader(HARNESS, "bench_anchors_under_test")


@pytest.fixture(scope="module")
def lindy_cases(harness, script_loader):
    # the helpers namespace the harness's main() hands to a plugin
    helpers = SimpleNamespace(
        Case=harness.Case,
        TorchBench=harness.TorchBench,
        randn=harness._randn,
        use_anchor=harness.use_anchor,
        anchor_root=harness.anchor_root,
        load_file=harness.load_file,
    )
    cases = []
    script_loader(PLUGIN, "lindy_reference_cases").register(cases.append, helpers)
    return cases


def _reference_families(harness) -> set[str]:
    harness.CASES = []  # a fresh registry: only the harness's own cases
    harness.register_anchor_cases()
    return {c.family for c in harness.CASES}


def test_every_case_has_a_registered_reference_and_a_unique_id(harness, lindy_cases):
    references = _reference_families(harness)
    ids = [c.id for c in lindy_cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert not set(ids) & {c.id for c in harness.CASES}, "a lindy id clashes with a reference id"
    for c in lindy_cases:
        assert c.family.startswith("lindy-") and c.id.startswith(c.family + "/"), c.id
        assert c.ref in references, f"{c.id}: ref {c.ref!r} is not a harness family"
        assert callable(c.build), c.id


def test_cases_match_their_reference_shapes(harness, lindy_cases):
    _reference_families(harness)
    shapes = {(c.family, c.B, c.L, c.H, c.N) for c in harness.CASES}
    for c in lindy_cases:
        assert (c.ref, c.B, c.L, c.H, c.N) in shapes, f"{c.id}: no {c.ref} case at its (B, L, H, N)"


def _tiny(case):
    """A copy at B=2, L=32 (>= the STU's 24 filters), H=32 (the LDNN's 32 heads, one feature each)."""
    tiny = copy.copy(case)
    tiny.B, tiny.L, tiny.H = 2, 32, 32
    tiny.N = None if case.N is None else 32
    return tiny


def test_each_builder_runs_forward_and_backward_at_a_tiny_shape(lindy_cases):
    torch.manual_seed(0)
    seen = {}
    for c in lindy_cases:  # one case per family: the same builder and extras at every length
        seen.setdefault(c.family, c)
    for c in seen.values():
        bench = c.build(_tiny(c), None)
        bench.fwd()
        bench.prepare()
        bench.fwdbwd()
        assert bench.leaves, f"{c.id}: nothing is differentiated"
        grads = [t.grad for t in bench.leaves]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{c.id}: no gradient reached"
        assert all(g is None or torch.isfinite(g).all() for g in grads), f"{c.id}: non-finite gradient"
