"""HTTP sessions with bounded urllib3 retries and a timeout on every request."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# One place for the retry policy of every service we call.
RETRY_ATTEMPTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_BACKOFF_FACTOR_S = 1.0
# A Retry-After of an hour would hold a worker past the run's deadline: wait at most this long
# and let the next scheduled run try again.
MAX_RETRY_AFTER_S = 60.0


class CappedRetry(Retry):
    """urllib3 Retry that honours Retry-After, but never sleeps longer than MAX_RETRY_AFTER_S."""

    def get_retry_after(self, response: Any) -> float | None:
        """Return the server's Retry-After, capped."""
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


def build_retry(backoff_factor: float = RETRY_BACKOFF_FACTOR_S) -> Retry:
    """Retry connection errors, read errors, 429 and 5xx up to RETRY_ATTEMPTS times."""
    return CappedRetry(
        total=RETRY_ATTEMPTS,
        connect=RETRY_ATTEMPTS,
        read=RETRY_ATTEMPTS,
        status=RETRY_ATTEMPTS,
        status_forcelist=RETRY_STATUSES,
        # Every call we make is idempotent (reads, whole-range writes, formatting), so POST and
        # PUT are retried too.
        allowed_methods=frozenset({"GET", "POST", "PUT"}),
        backoff_factor=backoff_factor,
        backoff_max=MAX_RETRY_AFTER_S,
        respect_retry_after_header=True,
        # After the last attempt hand back the response so the caller can read the error body.
        raise_on_status=False,
    )


class TimeoutSession(requests.Session):
    """A requests Session that applies a default timeout to every request."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        """Send the request with the default timeout unless the caller gave one."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().request(method, url, *args, **kwargs)


def mount_retries(
    session: requests.Session, pool_size: int, backoff_factor: float = RETRY_BACKOFF_FACTOR_S
) -> requests.Session:
    """Mount a retrying adapter whose connection pool fits pool_size concurrent requests."""
    adapter = HTTPAdapter(
        max_retries=build_retry(backoff_factor),
        pool_connections=pool_size,
        pool_maxsize=pool_size,
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def build_session(
    timeout_s: float, pool_size: int = 10, backoff_factor: float = RETRY_BACKOFF_FACTOR_S
) -> requests.Session:
    """Return a TimeoutSession with bounded retries, shared safely by worker threads."""
    session = TimeoutSession(timeout_s)
    session.headers["User-Agent"] = "threads-metrics"
    return mount_retries(session, pool_size, backoff_factor)
