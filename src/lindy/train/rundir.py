"""Run folders: one run, one folder, one writer.

new_run_folder   ``<run_root>/<name>/<stamp>[-k][_<what ran>]`` made with one ``mkdir`` (atomic): two
                 runs started in the same second get ``<stamp>`` and ``<stamp>-2``, never one folder
RunLock          ``fcntl.flock`` on ``<folder>/.lock`` for the run's whole life (the OS releases it when
                 the process ends, however it ends); a second writer fails at once, naming the folder
                 and the process that holds it
lindy_files      what a run writes there, so that a new run refuses a folder that holds any of it (or
                 anything else) unless asked to resume or to overwrite (which removes only these)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "summary.json", "config.yaml", "curves.png")
RUN_FOLDERS = ("tensorboard", "wandb")


class RunFolderError(ValueError):
    """A run folder that this run may not use (busy, not empty, finished, another configuration)."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``folder/.lock``, holding this process's pid and host."""

    def __init__(self, folder: Path):
        import fcntl

        self.folder, self.path = Path(folder), Path(folder) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderError(
                f"run folder {self.folder} is in use by {holder} (it holds {self.path}): one run, one "
                "writer. Wait for it to end, or give this run another trainer.run_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def new_run_folder(parent: Path, stamp: str, tag: str = "") -> Path:
    """Create and return a folder ``parent/<stamp>[-k][_tag]`` that did not exist before (k = 2, 3, ...)."""
    parent.mkdir(parents=True, exist_ok=True)
    suffix = f"_{tag}" if tag else ""
    k = 1
    while True:
        path = parent / (f"{stamp}{suffix}" if k == 1 else f"{stamp}-{k}{suffix}")
        try:
            path.mkdir()  # atomic: of two processes, exactly one creates it
            return path
        except FileExistsError:
            k += 1


def folder_tag(overrides: list[str], limit: int = 60) -> str:
    """A folder-name-safe summary of the overrides that change what runs (``data=acsf1,seed=1``)."""
    text = ",".join(overrides)
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "-", text)
    if len(safe) > limit:
        safe = safe[: limit - 9] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return safe


def contents(folder: Path) -> list[str]:
    """The names in ``folder`` other than its lock file (sorted)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_NAME)


def clear_run_files(folder: Path) -> None:
    """Remove what a run writes in ``folder`` (``trainer.overwrite=true``); other files stay."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)
