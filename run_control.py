"""When the run must stop starting requests: its deadline, SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType


class RunStopped(Exception):
    """The deadline passed or a signal arrived: no new request may start."""


class RunControl:
    """Deadline and stop signal shared by every worker thread."""

    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + timeout_s
        self._stop = threading.Event()
        self.signal_number: int | None = None

    @property
    def stopped_early(self) -> bool:
        """True once the deadline has passed or a stop was requested."""
        return self._stop.is_set() or self._clock() >= self._deadline

    def request_stop(self, signal_number: int | None = None) -> None:
        """Ask every worker to finish what it is doing and start nothing new."""
        if signal_number is not None and self.signal_number is None:
            self.signal_number = signal_number
        self._stop.set()

    def check(self) -> None:
        """Raise RunStopped if no new request may start."""
        if self.stopped_early:
            raise RunStopped

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking at once (with RunStopped) on a stop or the deadline."""
        remaining = self._deadline - self._clock()
        if self._stop.wait(min(seconds, max(remaining, 0.0))) or seconds >= remaining:
            raise RunStopped

    def install_signal_handlers(self) -> None:
        """Turn SIGTERM and SIGINT into a graceful stop (only from the main thread)."""

        def handle(signal_number: int, _frame: FrameType | None) -> None:
            self.request_stop(signal_number)

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
