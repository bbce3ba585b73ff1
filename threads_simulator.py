"""A faithful, stdlib-only simulator of the Threads Graph API (graph.threads.net, v1.0).

One in-memory world (accounts, tokens, posts, per-post metrics) answers HTTP requests through
``ThreadsWorld.handle(method, url, headers)``. Two front ends drive it:

* ``serve(world)``: a real threaded HTTP server on 127.0.0.1 (end-to-end tests, benchmarks);
* ``register_with_responses(rsps, world)``: ``responses`` callbacks (unit tests).

Endpoints: ``GET /v1.0/me/threads``, ``GET /v1.0/{media_id}/insights``, ``GET /v1.0/me`` and
``GET /refresh_access_token`` (also under ``/v1.0``). Shapes, codes and messages follow Meta's
documentation (see /work/shared/REFERENCE.md); where Meta documents nothing, the choice is
marked "unconfirmed" below. Like the Graph API, JSON bodies escape non-ASCII as ``\\uXXXX`` and
``/`` as ``\\/``: parse them, never string-match them.

Latency (``FaultPlan.latency_s``) is slept inside ``handle``, outside the lock, in the calling
thread, so with the HTTP server it is paid per request in each request thread, concurrently.

Run ``python threads_simulator.py --port 8081 --demo`` for a server to try by hand.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import sim_http
from sim_http import DropConnection, SimResponse

API_VERSION = "v1.0"
DEFAULT_BASE_URL = "https://graph.threads.net"
# Documented media object fields. like_count/repost_count/reply_count are NOT among them.
# fmt: off
MEDIA_FIELDS = frozenset((
    "id", "media_product_type", "media_type", "media_url", "permalink", "owner", "username",
    "text", "timestamp", "shortcode", "thumbnail_url", "children", "is_quote_post", "quoted_post",
    "reposted_post", "alt_text", "link_attachment_url", "gif_url", "topic_tag", "poll_attachment",
))
# fmt: on
ME_FIELDS = frozenset(
    ("id", "username", "name", "threads_profile_picture_url", "threads_biography")
)
MEDIA_TYPES = ("TEXT_POST", "IMAGE", "VIDEO", "CAROUSEL_ALBUM", "AUDIO", "REPOST_FACADE")
METRICS: dict[str, tuple[str, str]] = {  # name -> (title, description)
    "views": ("Views", "The number of times your post was played or displayed."),
    "likes": ("Likes", "The number of likes on the post."),
    "replies": ("Replies", "The number of replies on the post."),
    "reposts": ("Reposts", "The number of times the post was reposted."),
    "quotes": ("Quotes", "The number of times the post was quoted."),
    "shares": ("Shares", "The number of shares of the post."),
}
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
TOKEN_LIFETIME = timedelta(days=60)
REFRESH_MIN_AGE = timedelta(hours=24)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"
LOG_MAX_ENTRIES = 100_000  # bounded so benchmarks cannot grow memory without limit

# Error codes (Graph API numbering).
CODE_UNKNOWN = 1  # "An unknown error has occurred." (unknown insights metric)
CODE_TRANSIENT = 2  # "An unexpected error has occurred. Please retry..." (injected 500s)
CODE_RATE_LIMIT = 4  # application request limit (also used for the 429 answer)
CODE_PERMISSION = 10  # unconfirmed choice: refreshing a token younger than 24 h
CODE_PARAM = 100  # invalid parameter / nonexisting field / unsupported request
CODE_TOKEN = 190  # invalid, expired or revoked access token
SUBCODE_NO_OBJECT = 33
SUBCODE_EXPIRED = 463
SUBCODE_INVALIDATED = 460
# (code, HTTP status, message), served in rotation. Meta documents the codes for Graph API
# throttling; which HTTP status Threads pairs with each is unconfirmed, so both 400 and 403 occur.
THROTTLES = (
    (4, 400, "Application request limit reached"),
    (17, 403, "User request limit reached"),
    (32, 400, "Page request limit reached"),
    (613, 403, "Calls to this api have exceeded the rate limit."),
    (80001, 400, "There have been too many calls to this Threads account. Wait and try again."),
)
THROTTLE_MESSAGES = {code: message for code, _, message in THROTTLES}
MSG_BAD_TOKEN = "Invalid OAuth access token - Cannot parse access token"
MSG_EXPIRED = "Error validating access token: Session has expired on {0}. The current time is {1}."
MSG_REVOKED = (
    "Error validating access token: The session has been invalidated because the user changed"
    " their password or Facebook has changed the session for security reasons."
)
MSG_NO_FIELD = "Tried accessing nonexisting field ({0})"
MSG_NO_OBJECT = (
    "Unsupported get request. Object with ID '{0}' does not exist, cannot be loaded due to"
    " missing permissions, or does not support this operation"
)
MSG_UNSUPPORTED = (
    "Unsupported {0} request. Please read the Graph API documentation at"
    " https://developers.facebook.com/docs/graph-api"
)
MSG_TOO_YOUNG = "Session key invalid. This may be because the token is less than 24 hours old"
MSG_TRANSIENT = "An unexpected error has occurred. Please retry your request later."

ROUTES = (  # (kind, path regex); the kind names stats counters and fault scope
    ("list", re.compile(r"^/v1\.0/(me|\d+)/threads/?$")),
    ("insights", re.compile(r"^/v1\.0/(\d+)/insights/?$")),
    ("refresh", re.compile(r"^(?:/v1\.0)?/refresh_access_token/?$")),
    ("me", re.compile(r"^/v1\.0/(me)/?$")),
)
FAULTABLE_KINDS = frozenset({"list", "insights"})
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def utcnow() -> datetime:
    """Return the current time in UTC (the default world clock)."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """Serialise a datetime the way Threads does: ``2023-10-17T05:42:03+0000``."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def shortcode_for(post_id: str) -> str:
    """Derive an Instagram-style shortcode (base64 alphabet) from a numeric id."""
    number, chars = int(post_id), []
    while number:
        number, digit = divmod(number, 64)
        chars.append(_B64_ALPHABET[digit])
    return "".join(reversed(chars)) or "A"


class ManualClock:
    """A settable clock for tests: ``world.clock = ManualClock(start)``; ``clock.advance(...)``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by ``timedelta(**delta)``."""
        self.now += timedelta(**delta)


@dataclass
class SimPost:
    """One Threads media object and its lifetime insights."""

    id: str
    account: str
    text: str | None
    media_type: str
    media_url: str | None
    permalink: str
    shortcode: str
    timestamp: datetime
    is_quote_post: bool = False
    metrics: dict[str, int] = field(default_factory=dict)
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # any other field, e.g. topic_tag
    # Cached because every list request compares and prints them; timestamps never change.
    key: tuple[int, int] = field(init=False, repr=False, compare=False)
    timestamp_text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.key = (int(self.timestamp.timestamp()), int(self.id))
        self.timestamp_text = format_timestamp(self.timestamp)

    def sort_key(self) -> tuple[int, int]:
        """Position in the newest-first order (Unix seconds, then numeric id)."""
        return self.key


@dataclass
class SimToken:
    """An access token: who it belongs to and when it stops working."""

    value: str
    username: str
    created_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass
class SimAccount:
    """A Threads user; ``token*`` describe its newest token (older ones may still work)."""

    username: str
    user_id: str
    token: str
    token_created_at: datetime
    token_expires_at: datetime
    posts: list[SimPost] = field(default_factory=list)  # newest first


@dataclass
class FaultPlan:
    """Random faults and latency, drawn from a seeded RNG (only list/insights by default)."""

    seed: int = 0
    latency_s: float = 0.0  # slept in handle() for every request, any endpoint
    error_500_rate: float = 0.0  # rates are per-request probabilities; their sum must be <= 1
    throttle_rate: float = 0.0  # codes 4, 17, 32, 613, 80001 in rotation, HTTP 400/403
    rate_429: float = 0.0
    retry_after: int = 1  # the Retry-After header of 429 answers (scripted ones too)
    drop_rate: float = 0.0  # close the connection without an answer
    apply_to_refresh: bool = False
    rng: random.Random = field(init=False, repr=False)
    throttle_turn: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@dataclass
class SimStats:
    """Counters of what the world has served; read them after the traffic has stopped."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_account: Counter[str] = field(default_factory=Counter)  # "-": no or unknown token
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    log: deque[tuple[str, str | None, str]] = field(
        default_factory=lambda: deque(maxlen=LOG_MAX_ENTRIES)
    )  # (kind, account, path without query): never a token


class _ApiError(Exception):
    """An error answer; ``handle`` renders it with the request's fbtrace_id."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers: dict[str, str] = extra.pop("headers", {})
        self.extra = {"type": "OAuthException", **extra}


@dataclass
class _Request:
    """A parsed request: route kind and id, origin for ``next`` links, single-valued query."""

    method: str
    kind: str
    target: str | None  # the id in the path ("me" or digits), when the route has one
    origin: str
    path: str
    query: dict[str, str]
    token: str | None


def _json_bytes(payload: Any) -> bytes:
    """Encode like the Graph API: ASCII-only JSON with escaped slashes."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def _response(status: int, payload: Any, trace: str, headers: dict | None = None) -> SimResponse:
    """Build a JSON SimResponse carrying the trace id header."""
    base = {"Content-Type": "application/json; charset=UTF-8", "x-fb-trace-id": trace}
    return SimResponse(status, {**base, **(headers or {})}, _json_bytes(payload))


def _error_payload(err: _ApiError, trace: str) -> dict[str, Any]:
    """The Graph error body ``{"error": {...}}`` with fbtrace_id (never a token)."""
    body = {"message": err.message, **err.extra, "code": err.code, "fbtrace_id": trace}
    return {"error": body}


def _error_response(err: _ApiError, trace: str) -> SimResponse:
    """Render an error as a complete response."""
    return _response(err.status, _error_payload(err, trace), trace, err.headers)


def _no_object(object_id: str) -> _ApiError:
    """The answer for a deleted, foreign or unknown object: code 100, subcode 33."""
    message = MSG_NO_OBJECT.format(object_id)
    return _ApiError(
        400, CODE_PARAM, message, type="THApiException", error_subcode=SUBCODE_NO_OBJECT
    )


def _route(path: str) -> tuple[str, str | None]:
    """Endpoint kind (``other`` when unknown) and the id captured from the path."""
    for kind, pattern in ROUTES:
        match = pattern.match(path)
        if match:
            return kind, match.group(1) if pattern.groups else None
    return "other", None


def _parse_time(value: str, name: str) -> int:
    """Parse ``since``/``until``: Unix seconds or ``YYYY-MM-DD`` (midnight UTC)."""
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        return int(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise _ApiError(400, CODE_PARAM, f"(#100) Invalid parameter {name}") from None


def _encode_cursor(post: SimPost) -> str:
    """Opaque cursor: base64 of the post's position, robust to later inserts and deletes."""
    seconds, number = post.sort_key()
    return base64.urlsafe_b64encode(f"{seconds}:{number}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, int]:
    """Turn a cursor back into a sort key, or refuse it with code 100."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        seconds, number = raw.split(":")
        return int(seconds), int(number)
    except (ValueError, UnicodeDecodeError):
        raise _ApiError(400, CODE_PARAM, "(#100) Invalid cursor") from None


def _post_values(post: SimPost, account: SimAccount) -> dict[str, Any]:
    """Every field value of a post; None where the real API omits the field for this post."""
    values: dict[str, Any] = {
        "id": post.id,
        "media_product_type": "THREADS",
        "media_type": post.media_type,
        "media_url": post.media_url,
        "permalink": post.permalink,
        "owner": {"id": account.user_id},
        "username": account.username,
        "text": post.text,
        "timestamp": post.timestamp_text,
        "shortcode": post.shortcode,
        "is_quote_post": post.is_quote_post,
    }
    return {**values, **post.extra}


def _insert_newest_first(posts: list[SimPost], post: SimPost) -> None:
    """Keep ``posts`` sorted newest first; builders hit the O(1)/O(n) fast paths."""
    if not posts or post.key >= posts[0].key:
        posts.insert(0, post)
    elif post.key <= posts[-1].key:
        posts.append(post)
    else:
        posts.append(post)
        posts.sort(key=SimPost.sort_key, reverse=True)


def _split_csv(value: str | None) -> list[str]:
    """Split a comma-separated parameter, dropping blanks."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class ThreadsWorld:
    """The simulated Threads back end: accounts, posts, tokens, faults and statistics."""

    def __init__(self, clock: Callable[[], datetime] = utcnow, seed: int = 0) -> None:
        # The clock must return timezone-aware datetimes (compared with token and post times).
        self.lock = threading.RLock()  # one lock: the HTTP server calls handle() from many threads
        self.clock = clock
        self.accounts: dict[str, SimAccount] = {}
        self.tokens: dict[str, SimToken] = {}
        self.valid_fields: set[str] = set(MEDIA_FIELDS)
        self.unknown_field_status = 500  # Meta has answered both 500 and 400
        self.accept_bearer_header = False  # unconfirmed for Threads, so off by default
        self.faults = FaultPlan()
        self.stats = SimStats()
        self._rng = random.Random(seed)  # ids and refreshed tokens
        self._posts: dict[str, SimPost] = {}
        self._scripts: list[tuple[re.Pattern[str], deque[Any]]] = []
        self._seq = 0

    # ---- mutations for tests and the demo -------------------------------------------------
    def add_account(
        self,
        username: str,
        *,
        token: str | None = None,
        user_id: str | None = None,
        token_created_at: datetime | None = None,
        token_expires_at: datetime | None = None,
    ) -> SimAccount:
        """Create an account; by default its token is 7 days old (so refreshable)."""
        with self.lock:
            created = token_created_at or self.clock() - timedelta(days=7)
            account = SimAccount(
                username=username,
                user_id=user_id or str(self._rng.randrange(10**16, 10**17)),
                token=token or f"sim-token-{username}",
                token_created_at=created,
                token_expires_at=token_expires_at or created + TOKEN_LIFETIME,
            )
            self.accounts[username] = account
            self._store_token(account)
            return account

    def add_post(
        self,
        username: str,
        text: str | None = None,
        *,
        media_type: str | None = None,
        media_url: str | None = None,
        timestamp: datetime | None = None,
        post_id: str | None = None,
        is_quote_post: bool = False,
        metrics: dict[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> SimPost:
        """Publish a post (default: now, zero metrics); TEXT_POST if it has text, else IMAGE."""
        with self.lock:
            account = self.accounts[username]
            post_id = post_id or self._new_post_id()
            media_type = media_type or ("TEXT_POST" if text is not None else "IMAGE")
            if media_type not in MEDIA_TYPES:
                raise ValueError(f"unknown media_type {media_type!r}")
            if media_url is None and media_type in ("IMAGE", "VIDEO", "AUDIO"):
                ext = "mp4" if media_type == "VIDEO" else "jpg"
                media_url = f"https://scontent.cdninstagram.com/v/t51.2885-15/{post_id}.{ext}"
            shortcode = shortcode_for(post_id)
            post = SimPost(
                id=post_id,
                account=username,
                text=text,
                media_type=media_type,
                media_url=media_url,
                permalink=f"https://www.threads.net/@{username}/post/{shortcode}",
                shortcode=shortcode,
                timestamp=(timestamp or self.clock()).astimezone(UTC).replace(microsecond=0),
                is_quote_post=is_quote_post,
                metrics=dict(metrics) if metrics is not None else dict.fromkeys(METRICS, 0),
                extra=dict(extra or {}),
            )
            self._posts[post_id] = post
            _insert_newest_first(account.posts, post)
            return post

    def set_metrics(self, post_id: str, **metrics: int | None) -> None:
        """Set lifetime metrics; ``None`` removes one (the API then omits it)."""
        with self.lock:
            post = self._posts[post_id]
            for name, value in metrics.items():
                if name not in METRICS:
                    raise ValueError(f"unknown metric {name!r}")
                if value is None:
                    post.metrics.pop(name, None)
                else:
                    post.metrics[name] = value

    def bump_metrics(self, post_id: str, **deltas: int) -> None:
        """Add to lifetime metrics (missing ones start from 0)."""
        with self.lock:
            post = self._posts[post_id]
            self.set_metrics(post_id, **{k: post.metrics.get(k, 0) + v for k, v in deltas.items()})

    def delete_post(self, post_id: str) -> None:
        """Delete a post: no longer listed, its insights answer subcode 33."""
        with self.lock:
            self._posts[post_id].deleted = True

    def expire_token(self, username: str, token: str | None = None) -> None:
        """Expire one token of the account, or all of them (``token=None``)."""
        with self.lock:
            past = self.clock() - timedelta(seconds=1)
            for tok in self._tokens_of(username, token):
                tok.expires_at = past
            account = self.accounts[username]
            if token in (None, account.token):
                account.token_expires_at = past

    def revoke_token(self, username: str, token: str | None = None) -> None:
        """Invalidate one token of the account, or all of them (code 190, subcode 460)."""
        with self.lock:
            for tok in self._tokens_of(username, token):
                tok.revoked = True

    def posts_of(self, username: str, include_deleted: bool = False) -> list[SimPost]:
        """The account's posts, newest first (a copy of the list)."""
        with self.lock:
            return [p for p in self.accounts[username].posts if include_deleted or not p.deleted]

    def post(self, post_id: str) -> SimPost:
        """Look a post up by id."""
        with self.lock:
            return self._posts[post_id]

    def script(self, path_regex: str, responses: list[Any]) -> None:
        """Queue forced answers for paths matching ``path_regex`` (re.search, query excluded).

        Each item is served once, first-come, before any other logic (on any endpoint):
        ``"drop"``; an int status (429: rate limit with Retry-After; 400/403: throttle code 4;
        other: transient code 2); a dict ``{status, code, message, type, error_subcode,
        is_transient, headers}``; or a ready ``SimResponse``.
        """
        with self.lock:
            self._scripts.append((re.compile(path_regex), deque(responses)))

    def reset_stats(self) -> None:
        """Start counting afresh."""
        with self.lock:
            in_flight = self.stats.in_flight
            self.stats = SimStats(in_flight=in_flight)

    # ---- the HTTP core --------------------------------------------------------------------
    def handle(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> SimResponse:
        """Answer one request (full URL with query; a body is ignored); may raise DropConnection."""
        request = self._parse(method, url, headers or {})
        kind = request.kind
        with self.lock:
            self._seq += 1
            trace = self._trace_id(self._seq)
            account = self._token_owner(request.token)
            stats = self.stats
            stats.total += 1
            stats.by_kind[kind] += 1
            stats.by_account[account or "-"] += 1
            stats.log.append((kind, account, request.path))
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            fault = self._pick_fault(kind, request.path, trace)
        try:
            if self.faults.latency_s > 0:
                time.sleep(self.faults.latency_s)  # outside the lock: concurrent requests overlap
            if fault == "drop":
                raise DropConnection(request.path)
            if fault is not None:
                return fault
            with self.lock:
                status, payload, headers = self._dispatch(request, trace)
            return _response(status, payload, trace, headers)  # encode outside the lock
        finally:
            with self.lock:
                self.stats.in_flight -= 1

    def _parse(self, method: str, url: str, headers: dict[str, str]) -> _Request:
        """Split the URL; take the token from the query (or a Bearer header if enabled)."""
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        token = query.get("access_token")
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if token is None and self.accept_bearer_header and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        kind, target = _route(parts.path)
        origin = f"{parts.scheme}://{parts.netloc}"
        return _Request(method.upper(), kind, target, origin, parts.path, query, token)

    def _dispatch(self, request: _Request, trace: str) -> tuple[int, Any, dict]:
        """Route to an endpoint: (status, payload, extra headers), errors rendered Graph-style."""
        handlers = {
            "list": self._list,
            "insights": self._insights,
            "refresh": self._refresh,
            "me": self._me,
        }
        try:
            if request.method != "GET" or request.kind not in handlers:
                raise _ApiError(400, CODE_PARAM, MSG_UNSUPPORTED.format(request.method.lower()))
            return 200, handlers[request.kind](request), {}
        except _ApiError as err:
            return err.status, _error_payload(err, trace), err.headers

    # ---- endpoints ------------------------------------------------------------------------
    def _list(self, request: _Request) -> dict[str, Any]:
        """``/me/threads``: filter, order newest first, page with cursors and full URLs."""
        account = self._authorise(request.token)
        if request.target not in ("me", account.user_id):
            raise _no_object(request.target or "")
        q = request.query
        if q.get("before") and q.get("after"):
            raise _ApiError(400, CODE_PARAM, "(#100) Cannot specify both before and after")
        fields = self._check_fields(q.get("fields"), self.valid_fields)
        limit = self._limit(q.get("limit"))
        since = _parse_time(q["since"], "since") if q.get("since") else None
        until = _parse_time(q["until"], "until") if q.get("until") else None
        posts = [
            p
            for p in account.posts
            if not p.deleted
            and (since is None or p.key[0] >= since)
            and (until is None or p.key[0] <= until)
        ]
        start, end = self._page_bounds(posts, q, limit)
        page = posts[start:end]
        if not page:
            return {"data": []}
        data = [self._render(post, account, fields) for post in page]
        first, last = _encode_cursor(page[0]), _encode_cursor(page[-1])
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        if end < len(posts):
            paging["next"] = self._page_url(request, "after", last)
        if start > 0:
            paging["previous"] = self._page_url(request, "before", first)
        return {"data": data, "paging": paging}

    def _insights(self, request: _Request) -> dict[str, Any]:
        """``/{media_id}/insights``: one lifetime value per requested, known metric."""
        account = self._authorise(request.token)
        media_id = request.target or ""
        post = self._posts.get(media_id)
        if post is None or post.deleted or post.account != account.username:
            raise _no_object(media_id)
        names = _split_csv(request.query.get("metric"))
        if not names:
            raise _ApiError(400, CODE_PARAM, "(#100) The parameter metric is required")
        if any(name not in METRICS for name in names):
            raise _ApiError(500, CODE_UNKNOWN, "An unknown error has occurred.")
        if post.media_type == "REPOST_FACADE":
            return {"data": []}  # documented: reposts belong to other users
        return {
            "data": [
                {
                    "name": name,
                    "period": "lifetime",
                    "values": [{"value": post.metrics[name]}],
                    "title": METRICS[name][0],
                    "description": METRICS[name][1],
                    "id": f"{media_id}/insights/{name}/lifetime",
                }
                for name in names
                if name in post.metrics
            ]
        }

    def _refresh(self, request: _Request) -> dict[str, Any]:
        """``/refresh_access_token``: a new 60-day token; the old one keeps working."""
        if request.query.get("grant_type") != "th_refresh_token":
            raise _ApiError(400, CODE_PARAM, "(#100) Unsupported grant_type")
        account = self._authorise(request.token)
        now = self.clock()
        if now - self.tokens[request.token].created_at < REFRESH_MIN_AGE:
            raise _ApiError(400, CODE_PERMISSION, MSG_TOO_YOUNG)
        account.token = f"THAA{self._rng.getrandbits(160):040x}"
        account.token_created_at, account.token_expires_at = now, now + TOKEN_LIFETIME
        self._store_token(account)
        expires_in = int(TOKEN_LIFETIME.total_seconds())
        return {"access_token": account.token, "token_type": "bearer", "expires_in": expires_in}

    def _me(self, request: _Request) -> dict[str, Any]:
        """``/me``: the token owner's profile fields."""
        account = self._authorise(request.token)
        values = {"id": account.user_id, "username": account.username}
        fields = self._check_fields(request.query.get("fields"), ME_FIELDS)
        return {name: values[name] for name in fields if name in values}

    # ---- helpers --------------------------------------------------------------------------
    def _authorise(self, token: str | None) -> SimAccount:
        """Resolve a token to its account, or raise the matching code 190 error."""
        tok = self.tokens.get(token or "")
        if tok is None:
            raise _ApiError(400, CODE_TOKEN, MSG_BAD_TOKEN)
        if tok.revoked:
            raise _ApiError(400, CODE_TOKEN, MSG_REVOKED, error_subcode=SUBCODE_INVALIDATED)
        now = self.clock()
        if now >= tok.expires_at:
            stamp = "%A, %d-%b-%y %H:%M:%S UTC"
            message = MSG_EXPIRED.format(tok.expires_at.strftime(stamp), now.strftime(stamp))
            raise _ApiError(400, CODE_TOKEN, message, error_subcode=SUBCODE_EXPIRED)
        return self.accounts[tok.username]

    def _check_fields(self, raw: str | None, valid: set[str] | frozenset[str]) -> list[str]:
        """Requested fields (default ``id``); the first unknown one is refused with code 100."""
        fields = _split_csv(raw) or ["id"]
        for name in fields:
            if name not in valid:
                raise _ApiError(
                    self.unknown_field_status,
                    CODE_PARAM,
                    MSG_NO_FIELD.format(name),
                    type="THApiException",
                )
        return fields

    @staticmethod
    def _limit(raw: str | None) -> int:
        """Page size: default 25, clamped to 1..100."""
        if not raw:
            return DEFAULT_LIMIT
        if not raw.isdigit():
            raise _ApiError(400, CODE_PARAM, "(#100) Param limit must be a number")
        return max(1, min(int(raw), MAX_LIMIT))

    @staticmethod
    def _page_bounds(posts: list[SimPost], query: dict[str, str], limit: int) -> tuple[int, int]:
        """Slice bounds for a page: after a cursor, up to a cursor, or from the top."""
        if query.get("after"):
            key = _decode_cursor(query["after"])
            start = sum(1 for p in posts if p.key >= key)
            return start, min(start + limit, len(posts))
        if query.get("before"):
            key = _decode_cursor(query["before"])
            end = sum(1 for p in posts if p.key > key)
            return max(0, end - limit), end
        return 0, min(limit, len(posts))

    @staticmethod
    def _page_url(request: _Request, direction: str, cursor: str) -> str:
        """A full paging URL on the same origin carrying every parameter plus the cursor."""
        query = {k: v for k, v in request.query.items() if k not in ("before", "after")}
        query[direction] = cursor
        return f"{request.origin}{request.path}?{urlencode(query)}"

    @staticmethod
    def _render(post: SimPost, account: SimAccount, fields: list[str]) -> dict[str, Any]:
        """Only the requested fields that have a value for this post."""
        values = _post_values(post, account)
        return {name: values[name] for name in fields if values.get(name) is not None}

    def _pick_fault(self, kind: str, path: str, trace: str) -> SimResponse | str | None:
        """Choose a scripted or random fault for this request (caller holds the lock)."""
        for pattern, queue in self._scripts:
            if queue and pattern.search(path):
                self.stats.faults["scripted"] += 1
                return self._scripted(queue.popleft(), trace)
        plan = self.faults
        if kind not in FAULTABLE_KINDS and not (kind == "refresh" and plan.apply_to_refresh):
            return None
        # One draw against cumulative rates, so each rate is the exact probability.
        roll, edge = plan.rng.random(), 0.0
        for name in ("drop_rate", "rate_429", "throttle_rate", "error_500_rate"):
            edge += getattr(plan, name)
            if roll < edge:
                self.stats.faults[name.removesuffix("_rate")] += 1
                return self._random_fault(name, trace)
        return None

    def _random_fault(self, name: str, trace: str) -> SimResponse | str:
        """Render one kind of random fault."""
        plan = self.faults
        if name == "drop_rate":
            return "drop"
        if name == "rate_429":
            return self._scripted(429, trace)
        if name == "throttle_rate":
            code, status, _ = THROTTLES[plan.throttle_turn % len(THROTTLES)]
            plan.throttle_turn += 1
            return self._scripted({"status": status, "code": code}, trace)
        return self._scripted(500, trace)

    def _scripted(self, spec: Any, trace: str) -> SimResponse | str:
        """Turn a scripted answer spec (see ``script``) into a response or ``"drop"``."""
        if isinstance(spec, SimResponse) or spec == "drop":
            return spec
        if isinstance(spec, int):  # canned answers per status
            code = CODE_RATE_LIMIT if spec in (400, 403, 429) else CODE_TRANSIENT
            spec = {"status": spec, "code": code}
            if spec["status"] == 429:
                spec["headers"] = {"Retry-After": str(self.faults.retry_after)}
        extra = dict(spec)
        status, code = extra.pop("status", 500), extra.pop("code", CODE_TRANSIENT)
        message = extra.pop("message", THROTTLE_MESSAGES.get(code, MSG_TRANSIENT))
        if code == CODE_TRANSIENT or code in THROTTLE_MESSAGES:
            extra.setdefault("is_transient", True)
        return _error_response(_ApiError(status, code, message, **extra), trace)

    def _store_token(self, account: SimAccount) -> None:
        """Record the account's current token in the token table."""
        self.tokens[account.token] = SimToken(
            account.token, account.username, account.token_created_at, account.token_expires_at
        )

    def _tokens_of(self, username: str, token: str | None) -> list[SimToken]:
        """The account's tokens, or just the named one."""
        return [
            t
            for t in self.tokens.values()
            if t.username == username and (token is None or t.value == token)
        ]

    def _token_owner(self, token: str | None) -> str | None:
        """Username behind a token (valid or not), for statistics only."""
        tok = self.tokens.get(token or "")
        return tok.username if tok else None

    def _new_post_id(self) -> str:
        """A fresh unique 18-digit id."""
        while True:
            candidate = str(self._rng.randrange(10**17, 10**18))
            if candidate not in self._posts:
                return candidate

    @staticmethod
    def _trace_id(seq: int) -> str:
        """A random-looking but deterministic fbtrace_id for the n-th request."""
        digest = hashlib.blake2b(seq.to_bytes(8, "big"), digest_size=9).digest()
        return "A" + base64.urlsafe_b64encode(digest).decode()[:10]


# ---- world builders ---------------------------------------------------------------------------
DEMO_ANCHOR = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)  # fixed, so demo posts are deterministic
DEMO_ACCOUNTS = (("anna", "anna.writes"), ("ivan", "ivan_petrov"), ("coffee", "coffee.lab"))
# Texts that spreadsheets, CSV tools and pandas misread: formulas, numbers, NA markers.
HOSTILE_TEXTS = (
    '=IMPORTXML("http://x","//a")',
    "+7 999 123-45-67",
    "-5%",
    "@mention hi",
    "NA",
    "null",
    "N/A",
    "TRUE",
    "0012",
    "1e5",
    "'quoted",
)
RU_SENTENCES = (
    "Сегодня наконец-то дописал статью про асинхронный Python.",
    "Кто-нибудь уже пробовал API Threads? Делитесь впечатлениями!",
    "Утренний кофе и планы на неделю ☕️",
    "Ёлки-палки, опять дедлайн перенесли на пятницу.",
    "Мы выпустили обновление: быстрее, стабильнее, удобнее.",
    "Спасибо всем, кто пришёл на митап в Москве!",
    "Почему «кавычки-ёлочки» ломают половину парсеров?",
)
EN_SENTENCES = (
    "Shipping a small fix today.",
    "Thread 🧵 on rate limits, retries and backoff:",
    "Hot take: spreadsheets are databases.",
    "New blog post is up — link in bio.",
    "What is your favourite keyboard shortcut?",
)
EMOJI = ("🔥", "🚀", "☕️", "😂", "👍🏽", "🇷🇺", "❤️‍🔥", "👨‍👩‍👧")
CDN = "https://scontent.cdninstagram.com/v/t51.2885-15"


def _random_metrics(rng: random.Random) -> dict[str, int]:
    """Plausible lifetime metrics: views dominate, the rest are small fractions."""
    views = int(rng.lognormvariate(7, 1.3))
    likes = int(views * rng.uniform(0.005, 0.08))
    return {
        "views": views,
        "likes": likes,
        "replies": int(likes * rng.uniform(0, 0.3)),
        "reposts": int(likes * rng.uniform(0, 0.1)),
        "quotes": int(likes * rng.uniform(0, 0.05)),
        "shares": int(likes * rng.uniform(0, 0.1)),
    }


def _random_id(rng: random.Random, digits: int, taken: set[str]) -> str:
    """A unique id of exactly ``digits`` digits (17 and 18 both exceed float precision)."""
    while True:
        candidate = str(rng.randrange(10 ** (digits - 1), 10**digits))
        if candidate not in taken:
            taken.add(candidate)
            return candidate


def _long_text(rng: random.Random) -> str:
    """A 2,000-3,000 character Russian text."""
    target, parts = rng.randint(2000, 3000), []
    while sum(len(p) + 1 for p in parts) < target:
        parts.append(rng.choice(RU_SENTENCES))
    return " ".join(parts)[:target]


def _chatty_text(rng: random.Random) -> str:
    """One to three sentences in Russian and/or English, maybe with emoji."""
    sentences = [rng.choice(RU_SENTENCES + EN_SENTENCES) for _ in range(rng.randint(1, 3))]
    return " ".join(sentences) + (" " + rng.choice(EMOJI) if rng.random() < 0.5 else "")


def _demo_specs(rng: random.Random, hostile: list[str]) -> list[dict[str, Any]]:
    """add_post keyword arguments for one demo account, in random order."""
    other = str(rng.randrange(10**16, 10**17))  # someone else's post, for reposts and quotes
    specs: list[dict[str, Any]] = [{"text": text} for text in hostile]
    specs += [
        {"text": _long_text(rng)},
        {"text": "Первая строка\n\nтретья строка\n- пункт 1\n- пункт 2\r\nконец\tтаб"},
        {"media_type": "REPOST_FACADE", "metrics": {}, "extra": {"reposted_post": {"id": other}}},
        {"media_type": "REPOST_FACADE", "metrics": {}},
        {"media_type": "IMAGE"},
        {"media_type": "VIDEO", "extra": {"thumbnail_url": f"{CDN}/thumb.jpg"}},
        {"media_type": "IMAGE", "text": "Фото дня 📸"},
        {"media_type": "CAROUSEL_ALBUM", "text": "Carousel: 3 photos"},
        {"text": "Quoting this 👇", "is_quote_post": True, "extra": {"quoted_post": {"id": other}}},
    ]
    while len(specs) < rng.randint(20, 40):
        specs.append({"text": _chatty_text(rng)})
    rng.shuffle(specs)
    return specs


def make_demo_world(
    seed: int = 7, *, anchor: datetime = DEMO_ANCHOR, clock: Callable[[], datetime] = utcnow
) -> ThreadsWorld:
    """Three accounts (tokens ``demo-token-<name>``) with 20-40 tricky posts each, from ``seed``.

    Posts end at ``anchor`` (fixed by default, for determinism); tokens are valid relative to
    ``clock``. Some posts lack the ``shares`` or ``views`` metric, two share a timestamp.
    """
    rng, world, taken = random.Random(seed), ThreadsWorld(clock=clock, seed=seed), set()
    for index, (name, username) in enumerate(DEMO_ACCOUNTS):
        world.add_account(username, token=f"demo-token-{name}", user_id=str(2571 * 10**13 + index))
        moment = anchor - timedelta(seconds=rng.randint(60, 3600))
        hostile = list(HOSTILE_TEXTS[index :: len(DEMO_ACCOUNTS)])
        for position, spec in enumerate(_demo_specs(rng, hostile)):
            spec.setdefault("metrics", _random_metrics(rng))
            if position % 7 == 3:
                spec["metrics"].pop("shares", None)  # callers must leave a missing metric empty
            if position == 11:
                spec["metrics"].pop("views", None)
            post_id = _random_id(rng, 17 + position % 2, taken)
            world.add_post(username, post_id=post_id, timestamp=moment, **spec)
            if position != 4:  # posts 4 and 5 share a timestamp: order falls back to the id
                moment -= timedelta(seconds=rng.randint(1800, 3 * 86400))
    return world


def make_world(
    accounts: int, posts_per_account: int, seed: int = 1, *, anchor: datetime = DEMO_ANCHOR
) -> ThreadsWorld:
    """A large synthetic world for benchmarks: unique 18-digit ids, texts of varied length."""
    rng, world = random.Random(seed), ThreadsWorld(seed=seed)
    corpus = " ".join(RU_SENTENCES + EN_SENTENCES + EMOJI) * 12  # ~5,000 characters
    next_id = 18 * 10**16 + rng.randrange(10**15)  # ascending counter: unique by construction
    for index in range(accounts):
        username = f"user{index:04d}"
        world.add_account(username, token=f"bench-token-{index:04d}")
        moment = anchor
        for _ in range(posts_per_account):
            roll = rng.random()
            length = rng.randint(5, 80) if roll < 0.6 else rng.randint(80, 600)
            if roll > 0.95:
                length = rng.randint(600, 3000)
            offset = rng.randrange(len(corpus) - length)
            kind = "REPOST_FACADE" if roll > 0.97 else "IMAGE" if roll < 0.1 else "TEXT_POST"
            next_id += rng.randint(1, 10**6)
            world.add_post(
                username,
                None if kind == "REPOST_FACADE" else corpus[offset : offset + length],
                media_type=kind,
                post_id=str(next_id),
                timestamp=moment,
                metrics={} if kind == "REPOST_FACADE" else _random_metrics(rng),
            )
            moment -= timedelta(seconds=rng.randint(60, 7200))
    return world


# ---- front ends: the shared real HTTP server and responses adapter ---------------------------
serve = sim_http.serve
SimServer = sim_http.SimServer


def register_with_responses(
    rsps: Any, world: ThreadsWorld, base_url: str = DEFAULT_BASE_URL
) -> None:
    """Route every GET under ``base_url`` in a ``responses.RequestsMock`` to ``world.handle``."""
    sim_http.register_with_responses(rsps, world, base_url, methods=("GET",))


def main(argv: list[str] | None = None) -> int:
    """Run a simulator server in the foreground until Ctrl+C."""
    parser = argparse.ArgumentParser(description="Threads Graph API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--accounts", type=int, help="synthetic accounts (default: demo world)")
    parser.add_argument("--posts", type=int, default=100, help="posts per synthetic account")
    parser.add_argument("--demo", action="store_true", help="the demo world (the default)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args(argv)
    if args.accounts and not args.demo:
        world = make_world(args.accounts, args.posts, seed=args.seed)
    else:
        world = make_demo_world(seed=args.seed)
    world.faults = FaultPlan(latency_s=args.latency)
    # Ctrl+C must work even when a script started us in the background (SIGINT then ignored),
    # and SIGTERM should stop as cleanly as Ctrl+C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt), serve(world, args.host, args.port) as server:
        print(f"Threads simulator: {server.base_url}/{API_VERSION}  (Ctrl+C to stop)")
        accounts = list(world.accounts.values())
        for account in accounts[:20]:
            print(f"  @{account.username}  access_token={account.token}")
        if len(accounts) > 20:
            print(f"  ... {len(accounts) - 20} more (bench-token-NNNN)")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
