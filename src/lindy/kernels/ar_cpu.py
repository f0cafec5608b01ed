"""The STU output autoregression's C++ CPU loops (``csrc/ar_cpu.cpp``), compiled on first use, never at
install time.

``lindy.kernels.cpp.load`` builds them once per machine (cached under torch's extensions folder, rebuilt
when the source changes) and records their status as the fast path ``lindy_ar_cpu``. Without a C++
compiler or ninja, or with ``LINDY_NO_CPP=1``, ``ops()`` returns None and ``lindy.kernels.spectral.ar_filter``
runs its Python loop: the same numbers to float rounding, slower.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from lindy.kernels import cpp

__all__ = ["ops", "SOURCE", "NAME"]

SOURCE = Path(__file__).with_name("csrc") / "ar_cpu.cpp"
NAME = "lindy_ar_cpu"  # the extension, its TORCH_LIBRARY namespace and its fast-path status key
_lock = threading.Lock()
_fakes_registered = False


def ops():
    """``torch.ops.lindy_ar_cpu`` (ops ``forward``, ``backward``), or None if disabled or not buildable."""
    # With OpenMP the batch is split over PyTorch's threads (the extension then binds to the libgomp torch
    # has already loaded, one thread pool); a compiler without OpenMP still builds it, single-threaded.
    global _fakes_registered
    lib = cpp.load(NAME, [SOURCE], extra_cflags=["-O3"], optional_flags=["-fopenmp"])
    if lib is not None and not _fakes_registered:
        with _lock:
            if not _fakes_registered:
                # shape-only versions for torch.compile's fake tensors: both ops only write into given buffers
                torch.library.register_fake(f"{NAME}::forward")(lambda *args: None)
                torch.library.register_fake(f"{NAME}::backward")(lambda *args: None)
                _fakes_registered = True
    return lib
