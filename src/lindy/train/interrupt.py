"""Ctrl-C (SIGINT) stops a run cleanly at the next step boundary.

The first SIGINT only sets a flag; the loop sees it once the current optimiser step (and the evaluation or
checkpoint due at it) is done, writes last.pt at that step and raises ``Interrupted``, which the command
line turns into the command that resumes. Under DDP the flag is reduced with the step's loss, so every
rank stops at the same step. A second SIGINT interrupts at once (Python's KeyboardInterrupt).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path


class Interrupted(Exception):
    """The run stopped on SIGINT after ``step``; ``checkpoint`` holds it."""

    def __init__(self, step: int, checkpoint: Path, world: int = 1):
        super().__init__(f"interrupted after step {step}; wrote {checkpoint}")
        self.step, self.checkpoint, self.world = step, checkpoint, world


class StopOnSigint:
    """Context manager: while inside, SIGINT sets ``requested`` instead of raising."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
        print(
            "\nlindy train: stopping after this step (writing last.pt); Ctrl-C again to abort",
            file=sys.stderr,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
