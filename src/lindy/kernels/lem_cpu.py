"""The LEM recurrence's C++ CPU loop (``csrc/lem_cpu.cpp``), compiled on first use, never at install time.

``lindy.kernels.cpp.load`` builds it once per machine (about 10 s, cached under torch's extensions
folder, rebuilt when the source changes) and records its status as the fast path ``lindy_lem_cpu``.
Without a C++ compiler or ninja, or with ``LINDY_NO_CPP=1``, ``ops()`` returns None and
``lindy.kernels.lem_scan`` runs the same algorithm as a Python loop: the same numbers to float rounding
(the C++ float32 path takes its own vectorised exp, ~1e-7 apart), slower.
"""

from __future__ import annotations

from pathlib import Path

from lindy.kernels import cpp

__all__ = ["ops", "SOURCE", "NAME"]

SOURCE = Path(__file__).with_name("csrc") / "lem_cpu.cpp"
NAME = "lindy_lem_cpu"  # the extension, its TORCH_LIBRARY namespace and its fast-path status key


def ops():
    """``torch.ops.lindy_lem_cpu`` (ops ``forward``, ``backward``), or None if disabled or not buildable."""
    return cpp.load_buffer_ops(NAME, [SOURCE], ("forward", "backward"))
