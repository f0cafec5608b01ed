"""A versioned on-disk cache of processed tensors, so that slow readers and generators run once.

``cached_tensors(name, options, version, build, cache_dir=..., sources=...)`` returns the dict of tensors
``build()`` makes, from ``<cache_dir>/<name>-<key>.safetensors`` when it is there. The key hashes the name,
the builder's ``version`` (bump it whenever the generator or reader changes its output), every option, and
the size and modification time of each source file, so a changed generator, option or input file never
serves stale data. Writes are atomic (temporary file, then rename); a cache file that cannot be read is
rebuilt, with a warning naming it.

Where the cache lives, first match wins: ``cache_dir`` if given; else ``$LINDY_CACHE``; else
``<root>/lindy-cache`` for data read from a user's ``root``; else ``$XDG_CACHE_HOME/lindy`` (the XDG base
directory rule: only an absolute ``$XDG_CACHE_HOME`` counts); else ``~/.cache/lindy``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from lindy._atomic import atomic_write

CACHE_FORMAT = 1  # bump to invalidate every cache file at once


def default_cache_dir(root: str | Path | None = None) -> Path:
    """``$LINDY_CACHE``, else ``<root>/lindy-cache``, else ``$XDG_CACHE_HOME/lindy``, else
    ``~/.cache/lindy``."""
    if os.environ.get("LINDY_CACHE"):
        return Path(os.environ["LINDY_CACHE"])
    if root is not None:
        return Path(root).expanduser() / "lindy-cache"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the spec says a relative value is invalid and must be ignored
        return Path(xdg) / "lindy"
    return Path.home() / ".cache" / "lindy"


def cache_key(name: str, options: dict, version: int, sources: Iterable[str | Path] = ()) -> str:
    """A 16-hex-digit key of everything that decides the cached tensors."""
    stamps = []
    for src in sorted(str(s) for s in sources):
        st = Path(src).stat()
        stamps.append([src, st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {"format": CACHE_FORMAT, "name": name, "version": version, "options": options, "sources": stamps},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cached_tensors(
    name: str,
    options: dict,
    version: int,
    build: Callable[[], dict[str, torch.Tensor]],
    cache_dir: str | Path | None = None,
    sources: Iterable[str | Path] = (),
    enabled: bool = True,
    root: str | Path | None = None,
) -> dict[str, torch.Tensor]:
    """``build()``'s tensors, read from the cache when an entry for exactly these inputs exists.

    The entry lives in ``cache_dir``, else ``default_cache_dir(root)`` (``root``: the user's data folder
    the sources come from, if any)."""
    from safetensors.torch import load_file, save_file

    if not enabled:
        return build()
    sources = list(sources)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    path = folder / f"{name}-{cache_key(name, options, version, sources)}.safetensors"
    if path.exists():
        try:
            return load_file(str(path))
        except Exception as err:  # noqa: BLE001  (any unreadable file is rebuilt)
            warnings.warn(f"{path}: unreadable cache file ({err}); rebuilding it", stacklevel=2)
    tensors = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)))
    except OSError as err:  # a read-only data folder still works, just uncached
        warnings.warn(f"{folder}: cannot write the data cache ({err}); continuing without it", stacklevel=2)
    return tensors


def cached_splits(
    name: str,
    options: dict,
    version: int,
    build_split: Callable[[str], dict[str, torch.Tensor]],
    splits: Iterable[str] = ("train", "val", "test"),
    **where,
) -> dict[str, dict[str, torch.Tensor]]:
    """``{split: build_split(split)}`` through one ``cached_tensors`` entry (tensor ``key`` of a split
    stored as ``<split>_<key>``). ``build_split`` runs for ``splits`` in their order, so a generator that
    carries state across splits (e.g. the expressions already drawn) sees them in that order. ``where``:
    ``cache_dir``, ``root``, ``sources``, ``enabled``, as for ``cached_tensors``."""
    splits = tuple(splits)

    def build():
        return {f"{s}_{k}": v for s in splits for k, v in build_split(s).items()}

    flat = cached_tensors(name, options, version, build, **where)
    out: dict[str, dict[str, torch.Tensor]] = {s: {} for s in splits}
    for key, value in flat.items():
        split, _, field = key.partition("_")
        out[split][field] = value
    return out
