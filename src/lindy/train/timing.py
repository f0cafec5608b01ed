"""Wall time and tokens of a whole run across its resumed segments, and the rate of the last interval.

A run that is killed and resumed is several processes (segments). ``RunClock`` carries the time and tokens
of the segments before this one from the checkpoint (``state()`` is saved with it, in ``"timing"``), so

    elapsed() = time of earlier segments up to their checkpoint + time of this segment so far
    tokens_per_s over the whole run = tokens() / elapsed()

and ``segments`` lists each segment's steps, time and tokens. The time a killed segment spent after its
last checkpoint is lost with it (the resumed run redoes that work). ``rate(key)`` is the tokens/s since the
previous ``rate(key)`` (or this segment's start): what the logs show, not a running average with start-up.
"""

from __future__ import annotations

import time


class RunClock:
    def __init__(self, state: dict | None = None, step: int = 0):
        state = state or {}
        self.earlier = list(state.get("segments", []))
        self.start_step = step
        self.started = time.time()
        self.segment_tokens = 0
        self._marks: dict[str, tuple[float, int]] = {}

    def add(self, tokens: int) -> None:
        self.segment_tokens += tokens

    def segment_s(self) -> float:
        return time.time() - self.started

    def elapsed(self) -> float:
        return sum(s["wall_s"] for s in self.earlier) + self.segment_s()

    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.earlier) + self.segment_tokens

    def rate(self, key: str) -> float:
        """Tokens per second since the last call with this ``key``."""
        now = time.time()
        since, tokens = self._marks.get(key, (self.started, 0))
        self._marks[key] = (now, self.segment_tokens)
        return (self.segment_tokens - tokens) / max(now - since, 1e-9)

    def restart_intervals(self) -> None:
        """Start every ``rate`` interval now (after a validation, which is not training throughput)."""
        now = time.time()
        for key in self._marks:
            self._marks[key] = (now, self.segment_tokens)

    def segments(self, step: int) -> list[dict]:
        current = {
            "from_step": self.start_step,
            "to_step": step,
            "wall_s": round(self.segment_s(), 3),
            "tokens": self.segment_tokens,
        }
        return [*self.earlier, current]

    def state(self, step: int) -> dict:
        """What a checkpoint at ``step`` keeps, for the next segment."""
        return {"segments": self.segments(step)}
