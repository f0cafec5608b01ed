"""Checkpoints: atomic writes (``lindy._atomic``: temp file, fsync, rename) and safe loading
(``torch.load(weights_only=True)``).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that it loads with
``weights_only=True``: a tampered or foreign pickle that asks to run code fails to load instead. What a
lindy run puts in it, and when, is in ``lindy.train.resume``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lindy._atomic import atomic_write


def save_atomic(obj, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically: a crash at any point leaves the old file or the new one."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; a clear error names the file when it is unsafe."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in several types
        raise ValueError(
            f"{path} is not a lindy checkpoint that loads safely (weights_only=True refused it: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err


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
