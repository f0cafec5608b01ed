"""Large CPU buffers backed by transparent huge pages.

A fresh multi-MB CPU tensor is paid for at first touch, one page fault per 4 KiB page. On the 2-core VMs
lindy is developed on, filling a fresh 131 MB tensor took 48 ms with 4 KiB pages and 17 ms after
``madvise(MADV_HUGEPAGE)`` (2 MiB pages), as PyTorch's own ``THP_MEM_ALLOC_ENABLE=1`` does for every
allocation. ``empty`` applies the advice to the buffers lindy's kernels allocate and fill themselves (LEM's
saved gates and states). Elsewhere (not Linux, CUDA, small tensors, advice refused) it is ``torch.empty``.
"""

from __future__ import annotations

import ctypes
import sys

import torch

__all__ = ["empty"]

MIN_BYTES = 4 << 20  # below a few huge pages the advice buys nothing
_MADV_HUGEPAGE = 14
_PAGE = 4096
_madvise = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _madvise = _libc.madvise
        _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _madvise.restype = ctypes.c_int
    except (OSError, AttributeError):
        _madvise = None


def empty(*shape: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """``torch.empty(shape)``, advised onto huge pages before its first touch when it is large and on CPU."""
    t = torch.empty(*shape, dtype=dtype, device=device)
    if _madvise is not None and t.device.type == "cpu" and t.nbytes >= MIN_BYTES:
        start = -(-t.data_ptr() // _PAGE) * _PAGE
        end = (t.data_ptr() + t.nbytes) // _PAGE * _PAGE
        _madvise(start, end - start, _MADV_HUGEPAGE)  # advice only: a refusal leaves ordinary pages
    return t
