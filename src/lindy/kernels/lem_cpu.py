"""The LEM recurrence's C++ CPU loop (``csrc/lem_cpu.cpp``), compiled on first use, never at install time.

``torch.utils.cpp_extension.load`` builds it once per machine (about 10 s, cached under torch's extensions
folder, rebuilt when the source changes). Without a C++ compiler or ninja, or with ``LINDY_NO_CPP=1``,
``ops()`` returns None and ``lindy.layers.lem_scan`` runs the same algorithm as a Python loop: the same
numbers to float rounding (the C++ float32 path takes its own vectorised exp, ~1e-7 apart), slower.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import torch

__all__ = ["ops", "SOURCE"]

SOURCE = Path(__file__).with_name("csrc") / "lem_cpu.cpp"
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict = {}


def ops():
    """``torch.ops.lindy_lem_cpu`` (ops ``forward``, ``backward``), or None if it cannot be built."""
    if os.environ.get("LINDY_NO_CPP", "") not in ("", "0"):
        return None
    with _lock:
        if "ops" not in _state:
            _state["ops"] = _build()
    return _state["ops"]


def _build():
    try:
        from torch.utils.cpp_extension import load
    except Exception as err:
        _log.warning("LEM CPU kernel unavailable (%s); using the Python loop", err)
        return None
    _log.info("building lindy's LEM CPU kernel (once per machine, about 10 s)")
    # With OpenMP the batch is split over PyTorch's threads (the extension then binds to the libgomp torch
    # has already loaded, one thread pool); a compiler without OpenMP still builds it, single-threaded.
    for flags in (["-O3", "-fopenmp"], ["-O3"]):
        try:
            load(
                name="lindy_lem_cpu",
                sources=[str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=flags[1:],
                is_python_module=False,
                verbose=False,
            )
            break
        except Exception as err:  # no compiler, no ninja, read-only cache: the Python loop still works
            _log.warning("LEM CPU kernel did not build with %s (%s)", flags, err)
    else:
        _log.warning("LEM CPU kernel unavailable; using the Python loop")
        return None
    # shape-only versions for torch.compile's fake tensors: both ops only write into given buffers
    torch.library.register_fake("lindy_lem_cpu::forward")(lambda *args: None)
    torch.library.register_fake("lindy_lem_cpu::backward")(lambda *args: None)
    return torch.ops.lindy_lem_cpu
