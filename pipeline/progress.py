"""Progress lines a person can follow in a step's log: how far, how fast, and the time left.

A step that runs for minutes (embedding a corpus, training a reader, reading thousands of
(question, context) pairs) logs one line at most every ``every`` seconds, through the same
``log`` as its other messages, so the line reaches the Dagster UI and ``dagster job execute``'s
output alike (a tqdm bar would reach neither the UI's structured log nor a file cleanly). A
step that finishes within ``every`` seconds logs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    """``advance`` after each unit of work; a line ``what: [done/total] pct (rate), about N
    min left`` when ``every`` seconds have passed since the last one."""

    def __init__(self, what: str, total: int, log: Callable[[str], None], *,
                 unit: str = "questions", every: float = 30.0) -> None:
        self.what, self.total, self.log, self.unit, self.every = what, total, log, unit, every
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, count: int = 1, note: str = "") -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        self.log(self.line(now - self.started) + (f"; {note}" if note else ""))

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        share = 100 * self.done / max(self.total, 1)
        return (f"{self.what}: [{self.done}/{self.total}] {share:.0f}% ({rate:.1f} {self.unit}/s),"
                f" about {_minutes(left)} left")


def _minutes(seconds: float) -> str:
    if seconds == float("inf"):
        return "? min"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
