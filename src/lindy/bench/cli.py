"""``lindy bench <suite>``: speed (layer throughput, latency and memory beside the FFT floor)."""

from __future__ import annotations

import sys

SUITES = {"speed": "lindy.bench.speed"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUITES:
        print(f"usage: lindy bench {{{','.join(SUITES)}}} [args]; got {argv[:1]}", file=sys.stderr)
        return 2
    import importlib

    return int(importlib.import_module(SUITES[argv[0]]).main(argv[1:]) or 0)
