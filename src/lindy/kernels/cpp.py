"""Build-on-first-use C++ extensions, and the status of every fast path lindy tried.

``load(name, sources)`` compiles a C++ extension the first time a process asks for it (never at install
time) with ``torch.utils.cpp_extension.load``, into torch's extensions cache (``TORCH_EXTENSIONS_DIR``,
default ``~/.cache/torch_extensions``; rebuilt only when the sources or flags change), and returns its ops
(``torch.ops.<name>``), or None when it cannot be built or is disabled: the caller then runs its Python
fallback, which computes the same numbers, slower. Setting ``LINDY_NO_CPP=1`` disables every C++ fast path
(checked on each call, so it can be flipped within a process).

``fast_path_status()`` maps each fast path that was tried in this process to "built", "disabled: <why>"
or "unavailable: <why>". A fast path that cannot build says so once in the log (a warning) and here; the
trainer copies this dict into summary.json, so no run falls back to a slow path silently.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["DISABLE_ENV", "disabled", "fast_path_status", "load", "record_status"]

#: set to anything but "" or "0" to turn every C++ fast path off (the Python fallbacks run)
DISABLE_ENV = "LINDY_NO_CPP"

_log = logging.getLogger(__name__)
_STATUS: dict[str, str] = {}
_LOGGED: set[tuple[str, str]] = set()
_FAKED: set[str] = set()  # extensions whose ops have their fake (shape-only) versions registered
# name -> (ops or None, status): one build attempt per process, whatever its outcome
_BUILT: dict[str, tuple[Any, str]] = {}
_lock = threading.Lock()


def record_status(name: str, status: str) -> None:
    """Record ``status`` for fast path ``name``; anything but "built" is logged as a warning, once per
    (name, status) in a process however often the status changes back and forth."""
    _STATUS[name] = status
    if status != "built" and (name, status) not in _LOGGED:
        _LOGGED.add((name, status))
        _log.warning("fast path %s: %s", name, status)


def fast_path_status() -> dict[str, str]:
    """{fast path name: "built" | "disabled: ..." | "unavailable: ..."} for every path tried so far."""
    return dict(_STATUS)


def disabled() -> bool:
    """Whether ``LINDY_NO_CPP`` turns the C++ fast paths off now."""
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


def load(
    name: str,
    sources: Sequence[str | os.PathLike],
    *,
    extra_cflags: Sequence[str] = ("-O3",),
    extra_ldflags: Sequence[str] = (),
    optional_flags: Sequence[str] = (),
    build_directory: str | os.PathLike | None = None,
) -> Any:
    """``torch.ops.<name>`` of the extension built from ``sources``, or None (disabled or unavailable).

    The sources define their ops with ``TORCH_LIBRARY(<name>, m)``. ``optional_flags`` go to both the
    compiler and the linker (e.g. ``-fopenmp``); when the build fails with them it is retried without
    (a warning says so). The first call builds (or finds the cached build), later calls return its result;
    each call records the status under ``name`` (see ``fast_path_status``).
    """
    if disabled():
        record_status(name, f"disabled: {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
        return None
    with _lock:
        if name not in _BUILT:
            _BUILT[name] = _build(name, sources, extra_cflags, extra_ldflags, optional_flags, build_directory)
    ops, status = _BUILT[name]
    record_status(name, status)
    return ops


def load_buffer_ops(name: str, sources: Sequence[str | os.PathLike], op_names: Sequence[str]) -> Any:
    """``load`` for lindy's CPU loops: -O3, OpenMP when the compiler has it, and a shape-only fake for each
    op in ``op_names`` (torch.compile's fake tensors), registered once per process.

    The ops only write into buffers they are given, so their fakes do nothing. With OpenMP the extension
    binds to the libgomp torch has already loaded (one thread pool); without it, it builds single-threaded.
    """
    lib = load(name, sources, extra_cflags=["-O3"], optional_flags=["-fopenmp"])
    if lib is not None:
        with _lock:
            if name not in _FAKED:
                for op in op_names:
                    torch.library.register_fake(f"{name}::{op}")(lambda *args: None)
                _FAKED.add(name)
    return lib


def _build(name, sources, cflags, ldflags, optional, build_directory) -> tuple[Any, str]:
    try:
        from torch.utils.cpp_extension import load as torch_load
    except Exception as err:  # noqa: BLE001 - any import failure means no extension, not a crash
        return None, f"unavailable: torch.utils.cpp_extension: {_short(err)}"
    _log.info("building C++ fast path %s (once per machine)", name)
    if build_directory is not None:
        os.makedirs(build_directory, exist_ok=True)
    attempts = [list(optional), []] if optional else [[]]
    errors = []
    for extra in attempts:
        try:
            torch_load(
                name=name,
                sources=[str(s) for s in sources],
                extra_cflags=[*cflags, *extra],
                extra_ldflags=[*ldflags, *extra],
                build_directory=None if build_directory is None else str(build_directory),
                is_python_module=False,
                verbose=False,
            )
        except Exception as err:  # noqa: BLE001 - no compiler, no ninja, a read-only cache: fall back
            _log.debug("C++ fast path %s did not build with %s", name, extra, exc_info=True)
            errors.append(_short(err))
            continue
        if extra != list(optional):
            _log.warning("C++ fast path %s built without %s (%s)", name, " ".join(optional), errors[0])
        return getattr(torch.ops, name), "built"
    return None, f"unavailable: {errors[-1]}"


def _short(err: BaseException) -> str:
    """One line of at most 200 chars: the error's first line (a build error's is the ninja command, so up
    to it) and the compiler's first ``error`` line when there is one."""
    lines = [line.strip() for line in str(err).strip().splitlines()]
    head = lines[0].split(": [", 1)[0] if lines else ""
    detail = next((line for line in lines[1:] if "error" in line.lower()), None)
    text = f"{type(err).__name__}: {head}" + (f": {detail}" if detail else "")
    return text if len(text) <= 200 else text[:197] + "..."
