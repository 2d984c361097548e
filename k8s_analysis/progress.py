"""Progress lines for long work: items done, rate and, when the total is known, ETA."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Progress:
    """Log ``label: N items, R/s, ETA`` from ``advance`` at most once per ``interval_s`` seconds.

    ``log`` is anything with an ``info`` method: a module logger or Dagster's ``context.log``.
    """

    def __init__(
        self,
        label: str,
        log: logging.Logger | logging.LoggerAdapter | object,
        total: int | None = None,
        interval_s: float = 5.0,
        details: Callable[[], str] | None = None,
        quiet_below: int = 0,
    ) -> None:
        self.label = label
        self.log = log
        self.total = total
        self.interval_s = interval_s
        self.details = details
        self.quiet_below = quiet_below
        self.done = 0
        self._started = time.monotonic()
        self._last_report = self._started

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last_report >= self.interval_s:
            self._last_report = now
            self.log.info(self.summary())

    @property
    def rate(self) -> float:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return self.done / elapsed

    def summary(self) -> str:
        line = f"{self.label}: {self.done:,} items, {self.rate:,.0f}/s"
        if self.total:
            remaining = max(self.total - self.done, 0)
            eta = remaining / self.rate if self.rate > 0 else float("inf")
            line += f", {self.done / self.total:.0%} of {self.total:,}, ETA {eta:,.0f} s"
        if self.details is not None:
            line += f", {self.details()}"
        return line

    def finish(self) -> None:
        """Log the final line, unless the work was smaller than ``quiet_below`` items."""
        if self.done < self.quiet_below:
            return
        self.log.info("%s (done in %.1f s)", self.summary(), time.monotonic() - self._started)
