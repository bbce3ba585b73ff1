"""Fetching for every account at once: new posts by cursor, then insights older than the TTL."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from accounts import Account
from logs import context
from merge import UPDATED_AT, normalize_keys
from run_control import RunControl, RunStopped
from run_stats import RunStats
from state_store import account_state
from threads_api import INSIGHT_METRICS, ThreadsClient, ThreadsError

log = logging.getLogger(__name__)

# Ask again for posts up to an hour older than the newest stored one: a post can show up in
# the list a little after a newer one did. One page of 100 posts covers it.
SINCE_OVERLAP_S = 3600
EARLIEST_SINCE = 1688540400  # the API refuses an earlier `since`
REPOST = "REPOST_FACADE"  # reposts of other people's posts have no insights
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def utc_iso(epoch: float) -> str:
    """Unix time as ISO 8601 UTC with a Z, the format of updated_at."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    """Unix time of an ISO 8601 text (Threads' or ours), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+0000")
    for pattern in (TIMESTAMP_FORMAT, "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern).timestamp()
        except ValueError:
            continue
    return None


def cell_value(value: Any) -> Any:
    """A post field as a sheet cell: objects and lists become compact JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


@dataclass
class KnownPost:
    """What the sheet already says about a post."""

    media_type: Any = None
    updated_at: float | None = None


def known_posts(sheet: pd.DataFrame) -> dict[str, dict[str, KnownPost]]:
    """Posts in the sheet by account and id, with their media type and last update."""
    frame = normalize_keys(sheet).dropna(subset=["account_name", "post_id"])
    media = frame["media_type"] if "media_type" in frame.columns else [None] * len(frame)
    updated = frame[UPDATED_AT] if UPDATED_AT in frame.columns else [None] * len(frame)
    known: dict[str, dict[str, KnownPost]] = {}
    for account, post_id, media_type, updated_at in zip(
        frame["account_name"], frame["post_id"], media, updated, strict=True
    ):
        known.setdefault(account, {})[post_id] = KnownPost(media_type, parse_time(updated_at))
    return known


@dataclass
class AccountOutcome:
    """How an account's fetching went; `error` is set when it failed."""

    error: str | None = None
    blocked: bool = False  # token refused or throttled: start nothing more for it this run


@dataclass
class CollectResult:
    """Fresh rows for the merge and each account's outcome (the state is updated in place)."""

    frame: pd.DataFrame
    outcomes: dict[str, AccountOutcome] = field(default_factory=dict)


class Collector:
    """Runs every account's crawl and insights on one pool of THREADS_CONCURRENCY workers."""

    def __init__(
        self,
        client: ThreadsClient,
        state: dict[str, Any],
        sheet: pd.DataFrame,
        ttl_s: float,
        stats: RunStats,
        control: RunControl,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.state = state
        self.known = known_posts(sheet)
        self.ttl_s = ttl_s
        self.stats = stats
        self.control = control
        self.clock = clock
        self.outcomes: dict[str, AccountOutcome] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- rows and outcomes (shared by the workers, so behind the lock) --

    def _put_row(self, account: str, post_id: str, values: dict[str, Any]) -> None:
        """Add fetched values to a post's fresh row (workers share the rows: locked)."""
        with self._lock:
            row = self._rows.setdefault((account, post_id), {})
            row.update(values)

    def _fail(self, account: Account, error: ThreadsError, action: str) -> None:
        """Record an account failure; a token error or throttling blocks the account."""
        outcome = self.outcomes[account.name]
        with self._lock:
            first = outcome.error is None
            outcome.error = outcome.error or f"{action}: {error.describe()}"
            outcome.blocked = outcome.blocked or error.is_token_error or error.is_throttled
        if not first:
            return
        if error.is_token_error:
            message = "token of %s was refused (%s); paste a new token into accounts_threads"
        elif error.is_throttled:
            message = "%s is throttled by Threads (%s); the next run continues"
        else:
            message = "fetching %s failed (%s)"
        log.error(
            message,
            account.name,
            error.describe(),
            extra=context(account=account.name, action=action),
        )

    # -- the work of one task --

    def crawl(self, account: Account) -> None:
        """List the account's new posts, and continue an unfinished first crawl."""
        entry = self.entries[account.name]
        try:
            if entry["newest_ts"]:
                self._crawl_new(account, entry)
            # With no newest post known (an account without posts yet) the short list is
            # walked again, or a first post would never be seen.
            if not entry["crawl_done"] or not entry["newest_ts"]:
                self._crawl_backlog(account, entry)
        except ThreadsError as error:
            self._fail(account, error, "list_posts")
        except RunStopped:
            pass

    def _take_page(self, account: Account, entry: dict[str, Any], posts: list[dict]) -> None:
        """Turn a page of posts into rows and advance the newest-post mark."""
        known = self.known.setdefault(account.name, {})
        for post in posts:
            post_id = str(post.get("id", "")).strip()
            if not post_id:
                continue
            values = {name: cell_value(value) for name, value in post.items() if name != "id"}
            self._put_row(account.name, post_id, values)
            with self._lock:
                known.setdefault(post_id, KnownPost()).media_type = post.get("media_type")
            posted_at = parse_time(post.get("timestamp"))
            if posted_at and posted_at > (entry["newest_ts"] or 0):
                entry["newest_ts"] = posted_at
        self.stats.add("posts_listed", len(posts))

    def _crawl_new(self, account: Account, entry: dict[str, Any]) -> None:
        """Ask only for posts newer than the newest stored, stopping at a page of known posts."""
        since = max(int(entry["newest_ts"]) - SINCE_OVERLAP_S, EARLIEST_SINCE)
        known = set(self.known.get(account.name, {}))
        for page in self.client.iter_post_pages(account.token, account.name, since=since):
            self._take_page(account, entry, page.posts)
            if all(str(post.get("id")) in known for post in page.posts):
                break

    def _crawl_backlog(self, account: Account, entry: dict[str, Any]) -> None:
        """Walk the whole list once, resuming where an earlier run stopped."""
        resumed = entry["crawl_after"] is not None
        try:
            pages = self.client.iter_post_pages(
                account.token, account.name, after=entry["crawl_after"]
            )
            for page in pages:
                self._take_page(account, entry, page.posts)
                entry["crawl_after"] = page.after_cursor
                if not page.next_url:
                    entry["crawl_done"], entry["crawl_after"] = True, None
        except ThreadsError as error:
            if resumed and not (error.is_token_error or error.is_throttled):
                # A stale cursor must not block the account forever: start over next run.
                entry["crawl_after"] = None
            raise

    def plan_insights(self, account: Account) -> list[str]:
        """Ids of the account's known posts whose insights are older than the TTL."""
        entry = self.entries[account.name]
        deleted = set(entry["deleted"])
        now = self.clock()
        due: list[str] = []
        with self._lock:
            known = dict(self.known.get(account.name, {}))
        for post_id, post in known.items():
            if post.media_type == REPOST or post_id in deleted:
                continue
            # The state's mark first; the sheet's updated_at when the state was lost.
            last = entry["metrics_at"].get(post_id) or post.updated_at
            if last is not None and self.ttl_s > 0 and now - last < self.ttl_s:
                self.stats.add("insights_skipped_fresh")
                log.debug(
                    "insights fresh; skipped",
                    extra=context(account=account.name, post=post_id, action="skip_insights"),
                )
                continue
            due.append(post_id)
        return due

    def fetch_insights(self, account: Account, post_id: str) -> None:
        """Fetch one post's insights and put them, with updated_at, into its row."""
        outcome = self.outcomes[account.name]
        if outcome.blocked:
            return
        try:
            metrics = self.client.fetch_insights(account.token, account.name, post_id)
        except RunStopped:
            return
        except ThreadsError as error:
            self._insights_failed(account, post_id, error)
            return
        fetched_at = self.clock()
        values = {name: metrics.get(name) for name in INSIGHT_METRICS if name in metrics}
        self._put_row(account.name, post_id, {**values, UPDATED_AT: utc_iso(fetched_at)})
        with self._lock:
            self.entries[account.name]["metrics_at"][post_id] = fetched_at
        self.stats.add("insights_fetched")

    def _insights_failed(self, account: Account, post_id: str, error: ThreadsError) -> None:
        """A deleted post is remembered; a token or throttle error fails the account."""
        where = context(account=account.name, post=post_id, action="insights")
        if error.is_deleted_object:
            with self._lock:
                self.entries[account.name]["deleted"].append(post_id)
            log.info("post no longer exists; keeping its row, not asking again", extra=where)
        elif error.is_token_error or error.is_throttled:
            self._fail(account, error, "insights")
        else:
            self.stats.add("insights_failed")
            log.warning("insights failed: %s", error.describe(), extra=where)

    # -- the pool --

    def run(self, accounts: list[Account], workers: int) -> CollectResult:
        """Crawl every account; as each crawl ends, queue its insights on the same pool."""
        self.outcomes = {account.name: AccountOutcome() for account in accounts}
        self.entries = {
            account.name: account_state(self.state, account.name) for account in accounts
        }
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="threads") as pool:
            pending: dict[Future[None], Account | None] = {
                pool.submit(self.crawl, account): account for account in accounts
            }
            while pending:
                # A short timeout keeps the main thread responsive to signals.
                done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    account = pending.pop(future)
                    future.result()
                    if account is not None and not self.outcomes[account.name].blocked:
                        for post_id in self.plan_insights(account):
                            task = pool.submit(self.fetch_insights, account, post_id)
                            pending[task] = None
                if self.control.stopped_early:
                    for future in list(pending):
                        if future.cancel():
                            pending.pop(future)
        self._count_accounts()
        return CollectResult(self._fresh_frame(), self.outcomes)

    def _count_accounts(self) -> None:
        for outcome in self.outcomes.values():
            self.stats.add("accounts_failed" if outcome.error else "accounts_ok")

    def _fresh_frame(self) -> pd.DataFrame:
        """The fetched rows as a DataFrame with the key columns first."""
        records = [
            {"account_name": account, "post_id": post_id, **values}
            for (account, post_id), values in self._rows.items()
        ]
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        return frame.astype(object) if not frame.empty else frame
