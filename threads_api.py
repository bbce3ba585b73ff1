"""Threads Graph API client: post pages, per-post insights and token refresh, with errors typed."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from logs import context, redact
from run_control import RunControl
from run_stats import RunStats

log = logging.getLogger(__name__)

API_VERSION = "v1.0"
PAGE_LIMIT = 100  # the API's maximum page size
INSIGHT_METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")

TOKEN_ERROR_CODE = 190
UNKNOWN_FIELD_CODE = 100
DELETED_SUBCODE = 33
# Throttling arrives as an error object (usually HTTP 400/403), which urllib3 Retry cannot see.
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
THROTTLE_BACKOFF_S = (2.0, 10.0, 30.0)

_UNKNOWN_FIELD = re.compile(r"nonexisting field \((\w+)\)")


class ThreadsError(Exception):
    """An error answer of the Threads API, with Meta's code, subcode and trace id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.status = status
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: what failed, with status, code and trace id."""
        parts = [f"HTTP {self.status}" if self.status else "no answer"]
        if self.code is not None:
            parts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode else ""))
        if self.fbtrace_id:
            parts.append(f"fbtrace_id {self.fbtrace_id}")
        return f"{self.message} ({', '.join(parts)})"

    @property
    def is_token_error(self) -> bool:
        """The token expired or was revoked: never retry."""
        return self.code == TOKEN_ERROR_CODE

    @property
    def is_throttled(self) -> bool:
        """Meta's rate limit answered."""
        return self.code in THROTTLE_CODES or self.status == 429

    @property
    def is_deleted_object(self) -> bool:
        """The post was deleted or is no longer accessible."""
        return self.code == UNKNOWN_FIELD_CODE and self.subcode == DELETED_SUBCODE

    @property
    def unknown_field(self) -> str | None:
        """The field the API rejected as nonexisting, if that is the error."""
        match = _UNKNOWN_FIELD.search(self.message)
        return match.group(1) if match and self.code == UNKNOWN_FIELD_CODE else None


@dataclass
class PostPage:
    """One page of /me/threads: its posts and the cursor that resumes after it."""

    posts: list[dict[str, Any]]
    after_cursor: str | None
    next_url: str | None


def error_from_response(response: requests.Response) -> ThreadsError:
    """Build a ThreadsError from a Graph-style error body (or from the bare status)."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return ThreadsError(
        str(error.get("message") or response.reason or "unexpected answer"),
        status=response.status_code,
        code=error.get("code"),
        subcode=error.get("error_subcode"),
        fbtrace_id=error.get("fbtrace_id"),
    )


def replace_query_param(url: str, name: str, value: str) -> str:
    """Return url with one query parameter replaced, the others kept as they were."""
    parts = urlsplit(url)
    query = [(key, val) for key, val in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(key, value if key == name else val) for key, val in query]
    return urlunsplit(parts._replace(query=urlencode(query)))


class ThreadsClient:
    """Calls the Threads API with at most `concurrency` requests in flight across all threads."""

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        control: RunControl,
        concurrency: int,
        post_fields: tuple[str, ...],
        throttle_backoff_s: tuple[float, ...] = THROTTLE_BACKOFF_S,
        stats: RunStats | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.control = control
        self.throttle_backoff_s = throttle_backoff_s
        self._slots = threading.BoundedSemaphore(concurrency)
        self._fields = list(post_fields)
        self._fields_lock = threading.Lock()
        self.stats = stats or RunStats()
        self.dropped_fields: list[str] = []

    @property
    def calls(self) -> int:
        """How many requests were sent (retries inside urllib3 not counted)."""
        return self.stats.snapshot()["threads_calls"]

    @property
    def post_fields(self) -> list[str]:
        """The post fields still requested (rejected ones dropped)."""
        with self._fields_lock:
            return list(self._fields)

    def _send(self, url: str, params: dict[str, Any] | None, where: dict[str, Any]) -> Any:
        """One GET inside a concurrency slot; returns JSON or raises ThreadsError."""
        with self._slots:
            # Checked after the slot is ours: a request queued at the deadline must not start.
            self.control.check()
            self.stats.add("threads_calls")
            if log.isEnabledFor(logging.DEBUG):
                # The full URL, as sent; the log formatter replaces the token with ***.
                full_url = requests.Request("GET", url, params=params).prepare().url
                log.debug("GET %s", full_url, extra=context(**{**where, "action": "request"}))
            try:
                response = self.session.get(url, params=params)
            except requests.RequestException as error:
                # requests copies the URL, token included, into its messages: redact.
                raise ThreadsError(f"request failed: {type(error).__name__}: {error}") from None
        if response.ok:
            try:
                return response.json()
            except ValueError:
                raise ThreadsError("answer is not JSON", status=response.status_code) from None
        raise error_from_response(response)

    def get(self, url: str, params: dict[str, Any] | None, where: dict[str, Any]) -> Any:
        """GET with throttling backoff: error-object throttles are retried after a pause."""
        for attempt, pause_s in enumerate((*self.throttle_backoff_s, None), start=1):
            try:
                return self._send(url, params, where)
            except ThreadsError as error:
                if not error.is_throttled or pause_s is None:
                    raise
                log.warning(
                    "throttled by Threads (%s); waiting %.0f s, attempt %d",
                    error.describe(),
                    pause_s,
                    attempt,
                    extra=context(action="throttled", **where),
                )
                self.control.wait(pause_s)
        raise AssertionError("unreachable")

    def _drop_field(self, field: str, account: str) -> bool:
        """Stop asking for a field the API rejected; False if it cannot be dropped."""
        with self._fields_lock:
            if field == "id":
                return False
            if field not in self._fields:
                # Another worker dropped it a moment ago: just ask again without it.
                return field in self.dropped_fields
            self._fields.remove(field)
            self.dropped_fields.append(field)
        log.warning(
            "Threads rejected post field %r; dropping it (fix THREADS_POST_FIELDS)",
            field,
            extra=context(account=account, action="drop_field"),
        )
        return True

    def iter_post_pages(
        self, token: str, account: str, *, since: int | None = None, after: str | None = None
    ) -> Iterator[PostPage]:
        """Yield pages of the account's posts, following paging.next until it ends."""
        params: dict[str, Any] | None = {
            "fields": ",".join(self.post_fields),
            "limit": PAGE_LIMIT,
            "access_token": token,
            **({"since": since} if since else {}),
            **({"after": after} if after else {}),
        }
        url: str | None = f"{self.base_url}/{API_VERSION}/me/threads"
        while url:
            try:
                body = self.get(url, params, {"account": account})
            except ThreadsError as error:
                field = error.unknown_field
                if field and self._drop_field(field, account):
                    # The next URL carries the old field list: rewrite it rather than append.
                    fields = ",".join(self.post_fields)
                    if params is None:
                        url = replace_query_param(url, "fields", fields)
                    else:
                        params["fields"] = fields
                    continue
                raise
            posts = body.get("data") or []
            paging = body.get("paging") or {}
            next_url = paging.get("next") if posts else None
            yield PostPage(posts, (paging.get("cursors") or {}).get("after"), next_url)
            # paging.next already carries every parameter: never add them again.
            url, params = next_url, None

    def fetch_insights(self, token: str, account: str, post_id: str) -> dict[str, int]:
        """Return the post's lifetime metrics; a metric the API leaves out stays absent."""
        body = self.get(
            f"{self.base_url}/{API_VERSION}/{post_id}/insights",
            {"metric": ",".join(INSIGHT_METRICS), "access_token": token},
            {"account": account, "post": post_id},
        )
        metrics: dict[str, int] = {}
        for item in body.get("data") or []:
            values = item.get("values") or [item.get("total_value") or {}]
            value = values[0].get("value") if values else None
            if item.get("name") in INSIGHT_METRICS and isinstance(value, int | float):
                metrics[item["name"]] = int(value)
        return metrics

    def refresh_token(self, token: str, account: str) -> tuple[str, int]:
        """Exchange a long-lived token for a new one; returns (token, expires_in seconds)."""
        body = self.get(
            f"{self.base_url}/refresh_access_token",
            {"grant_type": "th_refresh_token", "access_token": token},
            {"account": account, "action": "refresh_token"},
        )
        new_token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(new_token, str) or not isinstance(expires_in, int):
            raise ThreadsError("refresh answer lacks access_token or expires_in", status=200)
        return new_token, expires_in
