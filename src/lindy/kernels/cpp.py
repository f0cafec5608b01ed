"""Build-on-first-use C++ extensions, and the status of every fast path lindy tried.

``fast_path_status()`` maps each fast path that was tried in this process to "built", "disabled: <why>"
or "unavailable: <why>". A fast path that cannot build says so once in the log (a warning) and here; the
trainer copies this dict into summary.json, so no run falls back to a slow path silently.
"""

from __future__ import annotations

import logging

__all__ = ["fast_path_status", "record_status"]

_log = logging.getLogger(__name__)
_STATUS: dict[str, str] = {}


def record_status(name: str, status: str) -> None:
    """Record ``status`` for fast path ``name``; anything but "built" is logged once as a warning."""
    if _STATUS.get(name) == status:
        return
    _STATUS[name] = status
    if status != "built":
        _log.warning("fast path %s: %s", name, status)


def fast_path_status() -> dict[str, str]:
    """{fast path name: "built" | "disabled: ..." | "unavailable: ..."} for every path tried so far."""
    return dict(_STATUS)
