"""The STU output autoregression's C++ CPU loops (``csrc/ar_cpu.cpp``), compiled on first use, never at
install time.

``lindy.kernels.cpp.load`` builds them once per machine (cached under torch's extensions folder, rebuilt
when the source changes) and records their status as the fast path ``lindy_ar_cpu``. Without a C++
compiler or ninja, or with ``LINDY_NO_CPP=1``, ``ops()`` returns None and ``lindy.kernels.spectral.ar_filter``
runs its Python loop: the same numbers to float rounding, slower.
"""

from __future__ import annotations

from pathlib import Path

from lindy.kernels import cpp

__all__ = ["ops", "SOURCE", "NAME"]

SOURCE = Path(__file__).with_name("csrc") / "ar_cpu.cpp"
NAME = "lindy_ar_cpu"  # the extension, its TORCH_LIBRARY namespace and its fast-path status key


def ops():
    """``torch.ops.lindy_ar_cpu`` (ops ``forward``, ``backward``), or None if disabled or not buildable."""
    return cpp.load_buffer_ops(NAME, [SOURCE], ("forward", "backward"))
