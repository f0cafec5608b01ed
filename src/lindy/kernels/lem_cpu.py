"""The LEM recurrence's C++ CPU loop (``csrc/lem_cpu.cpp``), compiled on first use, never at install time.

``lindy.kernels.cpp.load`` builds it once per machine (about 10 s, cached under torch's extensions
folder, rebuilt when the source changes) and records its status as the fast path ``lindy_lem_cpu``.
Without a C++ compiler or ninja, or with ``LINDY_NO_CPP=1``, ``ops()`` returns None and
``lindy.kernels.lem_scan`` runs the same algorithm as a Python loop: the same numbers to float rounding
(the C++ float32 path takes its own vectorised exp, ~1e-7 apart), slower.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from lindy.kernels import cpp

__all__ = ["ops", "SOURCE", "NAME"]

SOURCE = Path(__file__).with_name("csrc") / "lem_cpu.cpp"
NAME = "lindy_lem_cpu"  # the extension, its TORCH_LIBRARY namespace and its fast-path status key
_lock = threading.Lock()
_fakes_registered = False


def ops():
    """``torch.ops.lindy_lem_cpu`` (ops ``forward``, ``backward``), or None if disabled or not buildable."""
    # With OpenMP the batch is split over PyTorch's threads (the extension then binds to the libgomp torch
    # has already loaded, one thread pool); a compiler without OpenMP still builds it, single-threaded.
    global _fakes_registered
    lib = cpp.load(NAME, [SOURCE], extra_cflags=["-O3"], optional_flags=["-fopenmp"])
    if lib is not None and not _fakes_registered:
        with _lock:
            if not _fakes_registered:
                # shape-only versions for torch.compile's fake tensors: both ops only write into given buffers
                torch.library.register_fake("lindy_lem_cpu::forward")(lambda *args: None)
                torch.library.register_fake("lindy_lem_cpu::backward")(lambda *args: None)
                _fakes_registered = True
    return lib
