"""The state file: crawl cursors and insight freshness marks, written atomically under a lock."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from logs import context

try:
    import fcntl
except ImportError:  # Windows: the demo and local runs must still work
    fcntl = None
    import msvcrt

log = logging.getLogger(__name__)

STATE_VERSION = 1
LOCK_WAIT_S = 30.0
# A field the API rejected is not asked for again for this long (then tried once more).
DROPPED_FIELD_MEMORY_S = 24 * 3600.0


class StateBusyError(Exception):
    """Another run holds the state file."""


def try_lock(lock_file: Any) -> bool:
    """Take an exclusive, non-blocking lock on an open file; False when another holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(lock_file.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows
        return False
    return True


def empty_state() -> dict[str, Any]:
    """A state with nothing known: every account crawls from its newest post."""
    return {"version": STATE_VERSION, "accounts": {}, "dropped_fields": {}}


def account_state(state: dict[str, Any], account: str) -> dict[str, Any]:
    """The account's part of the state, created on first use.

    crawl_after: cursor where an unfinished first crawl resumes; crawl_done: it reached the end;
    newest_ts: Unix time of the newest stored post; metrics_at: post id -> Unix time of its
    last insights; deleted: ids the API answered "does not exist" for.
    """
    accounts = state.setdefault("accounts", {})
    entry = accounts.setdefault(account, {})
    entry.setdefault("crawl_after", None)
    entry.setdefault("crawl_done", False)
    entry.setdefault("newest_ts", None)
    entry.setdefault("metrics_at", {})
    entry.setdefault("deleted", [])
    return entry


def _is_valid(state: Any) -> bool:
    """Check the shape well enough that the run cannot trip over it later."""
    return (
        isinstance(state, dict)
        and state.get("version") == STATE_VERSION
        and isinstance(state.get("accounts"), dict)
        and all(isinstance(entry, dict) for entry in state["accounts"].values())
        and isinstance(state.get("dropped_fields", {}), dict)
    )


class StateStore:
    """Loads and saves the state file; holds an exclusive lock for the whole run."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @contextlib.contextmanager
    def locked(self, wait_s: float = LOCK_WAIT_S) -> Iterator[StateStore]:
        """Hold the run lock: a second run on the same state waits, then gives up clearly."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as lock_file:
            deadline = time.monotonic() + wait_s
            while not try_lock(lock_file):
                if time.monotonic() >= deadline:
                    raise StateBusyError(
                        f"another run is using {self.path} (waited {wait_s:.0f} s); "
                        "let it finish or give this run its own THREADS_STATE_FILE"
                    )
                time.sleep(0.2)
            # Closing the file releases the lock, also if the process dies.
            yield self

    def load(self) -> dict[str, Any]:
        """Read the state; a missing file is empty, a corrupt one is moved aside."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty_state()
        except ValueError:  # not JSON, or not even UTF-8 (UnicodeDecodeError is a ValueError)
            state = None
        if not _is_valid(state):
            self._move_aside()
            return empty_state()
        state.setdefault("dropped_fields", {})
        return state

    def _move_aside(self) -> None:
        """Keep a corrupt file for inspection and start fresh: the sheet is the source of truth."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        os.replace(self.path, aside)
        log.warning(
            "state file %s is corrupt; moved it to %s and starting fresh",
            self.path,
            aside,
            extra=context(action="state_corrupt"),
        )

    def save(self, state: dict[str, Any]) -> None:
        """Write the state atomically: a temp file in the same folder, fsync, then rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(
            prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as temp_file:
                json.dump(state, temp_file, ensure_ascii=False, separators=(",", ":"))
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
