"""Progress counters of one run, the heartbeat line, and the run's summary."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from logs import context

log = logging.getLogger(__name__)

COUNTERS = (
    "accounts_ok",
    "accounts_failed",
    "posts_listed",
    "posts_new",
    "posts_updated",
    "insights_fetched",
    "insights_skipped_fresh",
    "insights_failed",
    "threads_calls",
)


class RunStats:
    """Thread-safe counters shared by the workers."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._lock = threading.Lock()
        self.started = time.monotonic()

    def add(self, name: str, amount: int = 1) -> None:
        """Add to one counter."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def duration_s(self) -> float:
        """Seconds since the run started."""
        return round(time.monotonic() - self.started, 3)


class Heartbeat:
    """Logs a `heartbeat` line with the counters every `interval_s` while the run works."""

    def __init__(self, stats: RunStats, interval_s: float, extra: Any = None) -> None:
        self.stats = stats
        self.interval_s = interval_s
        self.extra = extra or (lambda: {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            log.info(
                "heartbeat",
                extra=context(action="heartbeat", **self.stats.snapshot(), **self.extra()),
            )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
