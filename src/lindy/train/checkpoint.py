"""Checkpoints: atomic writes (``lindy._atomic``: temp file, fsync, rename), safe loading
(``torch.load(weights_only=True)``) and a checksum of the contents, verified on load.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that it loads with
``weights_only=True``: a tampered or foreign pickle that asks to run code fails to load instead. What a
lindy run puts in it, and when, is in ``lindy.train.resume``.

``save_atomic`` adds ``"checksum"``: the SHA-256 of every value in the dict (tensors by their raw bytes,
dtype and shape; the rest by type and repr, in the dict's order). ``load_checkpoint`` recomputes it, so a
file whose payload bytes changed (a flipped bit gives finite garbage that would otherwise resume silently
and be saved back) is refused, naming the file. Checkpoints written before this key existed load unchecked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from lindy._atomic import atomic_write

CHECKSUM_KEY = "checksum"


def checksum(obj) -> str:
    """SHA-256 (hex) of a checkpoint's contents, ignoring its own ``"checksum"`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != CHECKSUM_KEY} if isinstance(obj, dict) else obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            h.update(repr(k).encode())
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{type(obj).__name__}{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r};".encode())


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically: a crash at any point leaves the old file or the new one."""

    if isinstance(obj, dict):
        obj = {**obj, CHECKSUM_KEY: checksum(obj)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` and verify its checksum; a clear error names the file
    when it is unsafe or corrupt. The returned dict has no ``"checksum"`` entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in several types
        raise ValueError(
            f"{path} is not a lindy checkpoint that loads safely (weights_only=True refused it: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if isinstance(state, dict) and CHECKSUM_KEY in state:
        expected = state.pop(CHECKSUM_KEY)
        if checksum(state) != expected:
            raise ValueError(
                f"{path} is corrupt: the checksum of its contents does not match the one saved with it "
                "(changed bytes: a disk or copy error, or an edit); use another checkpoint (best.pt, a copy)"
            )
    return state


def rng_state() -> dict:
    """The torch RNG states (CPU and CUDA): the only randomness a lindy run draws after set-up (dropout;
    the data order has its own generator seeded per epoch)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
