"""Large CPU buffers: backed by transparent huge pages, and reused once nothing references them.

A fresh multi-MB CPU tensor is paid for at first touch, one page fault per 4 KiB page. On the 2-core VMs
lindy is developed on, filling a fresh 131 MB tensor took 48 ms with 4 KiB pages and 17 ms after
``madvise(MADV_HUGEPAGE)`` (2 MiB pages), as PyTorch's own ``THP_MEM_ALLOC_ENABLE=1`` does for every
allocation. ``empty`` applies the advice to the buffers lindy's kernels allocate and fill themselves (LEM's
saved gates and states).

PyTorch's CPU allocator has no cache: a freed block this large goes back to the OS, so the next training
step maps, faults and zeroes as much again (17 % of an LEM forward+backward at B=32, d=128, L=2000: 260 vs
216 ms). With ``reuse=True`` the storage is kept in a small pool, as CUDA's caching allocator keeps blocks,
and handed out again for a request of the same size once it is free: when nothing but the pool's own
tensor reaches it (no tensor, view or tensor saved by autograd, counted by the storage's use count, and no
storage handle, counted by Python's), so a buffer the caller still reaches is never handed out twice. The
pool tracks at most ``POOL_MAX_BYTES`` of storages, in use or free, forgetting the least recently used
first (a forgotten storage in use just stays its owner's), so it never keeps more than that alive by
itself; ``release_cached()`` empties it. The advice needs Linux; the pool skips inference and tracing
modes and a PyTorch without the use-count hook; CUDA or small tensors get plain ``torch.empty``.
"""

from __future__ import annotations

import ctypes
import sys
import threading

import torch

__all__ = ["empty", "release_cached", "cached_bytes", "POOL_MAX_BYTES"]

MIN_BYTES = 4 << 20  # below a few huge pages neither the advice nor the pool buys anything
POOL_MAX_BYTES = 1 << 30
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

_use_count = getattr(torch._C, "_storage_Use_Count", None)
_lock = threading.Lock()
# pooled storages, each held by a tensor of the pool's own, least recently used first
_pool: list[torch.Tensor] = []


def _references(t: torch.Tensor) -> tuple[int, int]:
    """(C++ references to t's storage: tensors, views, saved tensors; Python references to its handle)."""
    handle = t.untyped_storage()
    return _use_count(handle._cdata), sys.getrefcount(handle)


_UNSHARED = _references(torch.empty(1)) if _use_count is not None else None


def _is_free(own: torch.Tensor) -> bool:
    return _references(own) == _UNSHARED


def _advise_huge_pages(t: torch.Tensor) -> None:
    if _madvise is not None:
        start = -(-t.data_ptr() // _PAGE) * _PAGE
        end = (t.data_ptr() + t.nbytes) // _PAGE * _PAGE
        _madvise(start, end - start, _MADV_HUGEPAGE)  # advice only: a refusal leaves ordinary pages


def _poolable(device: torch.device) -> bool:
    return (
        _use_count is not None
        and device.type == "cpu"
        and not torch.is_inference_mode_enabled()  # inference tensors cannot be saved for backward later
        and not torch.compiler.is_compiling()
        and torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is None
        and not torch._C._is_torch_function_mode_enabled()
    )


def _view(own: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(0, dtype=dtype).set_(own.untyped_storage(), 0, shape)


def _free_bytes() -> int:
    return sum(own.nbytes for own in _pool if _is_free(own))


def empty(
    *shape: int, dtype: torch.dtype, device: torch.device | str = "cpu", reuse: bool = False
) -> torch.Tensor:
    """``torch.empty(shape)``: when large and on CPU, advised onto huge pages before its first touch, and
    with ``reuse`` taken from (and left to) the pool of freed buffers. The contents are undefined."""
    device = torch.device(device)
    nbytes = torch.Size(shape).numel() * torch.empty(0, dtype=dtype).element_size()
    if device.type != "cpu" or nbytes < MIN_BYTES:
        return torch.empty(*shape, dtype=dtype, device=device)
    if not (reuse and _poolable(device)):
        t = torch.empty(*shape, dtype=dtype, device=device)
        _advise_huge_pages(t)
        return t
    with _lock:  # the view is made under the lock, so no other thread can take the same storage
        for i, own in enumerate(_pool):
            if own.nbytes == nbytes and _is_free(own):
                _pool.append(_pool.pop(i))
                return _view(own, shape, dtype)
        t = torch.empty(*shape, dtype=dtype, device=device)
        _advise_huge_pages(t)
        _pool.append(torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage()))
        _trim()
        return t


def _trim() -> None:
    """Forget the least recently used storages while the pool tracks more than POOL_MAX_BYTES."""
    total = sum(own.nbytes for own in _pool)
    while total > POOL_MAX_BYTES and _pool:
        total -= _pool.pop(0).nbytes


def release_cached() -> int:
    """Hand the pool's free buffers back to the OS; returns the bytes released."""
    with _lock:
        free = [own for own in _pool if _is_free(own)]
        for own in free:
            _pool.remove(own)
        return sum(own.nbytes for own in free)


def cached_bytes() -> tuple[int, int]:
    """(bytes of pooled buffers now free, bytes of pooled buffers in use)."""
    with _lock:
        free = _free_bytes()
        return free, sum(own.nbytes for own in _pool) - free
