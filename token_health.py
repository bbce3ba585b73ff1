"""Token lifecycle: refresh long-lived tokens before they expire, and keep each account's health
in the tool's own columns of the accounts sheet (token_expires_at, last_success_at, last_error)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accounts import NAME_COLUMN, TOKEN_COLUMN, Account, find_column
from collect import AccountOutcome, parse_time, utc_iso
from logs import context, redact, register_secret
from run_control import RunStopped
from sink import ACCOUNTS_SHEET, CellUpdate, Sink, SinkError
from threads_api import ThreadsClient, ThreadsError

log = logging.getLogger(__name__)

EXPIRES_COLUMN = "token_expires_at"
SUCCESS_COLUMN = "last_success_at"
ERROR_COLUMN = "last_error"
HEALTH_COLUMNS = (EXPIRES_COLUMN, SUCCESS_COLUMN, ERROR_COLUMN)  # added in this order
LAST_ERROR_MAX_CHARS = 300
DAY_S = 86400
TOKEN_LIFETIME_S = 60 * DAY_S  # a long-lived token's life: its age is this minus its time left
MIN_REFRESH_AGE_S = DAY_S  # Threads refuses to refresh a younger token
# A try (refused, failed or done) is not repeated for this long: a token pasted a few hours ago
# must not cost a refused call every run until it is 24 hours old.
REFRESH_RETRY_S = 6 * 3600
TRIES_KEY = "token_refresh_tried_at"  # in the state: account name -> Unix time of the last try


@dataclass
class Health:
    """Accounts by health, for the last log line; `expiring` overlaps the other two."""

    ok: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    expiring: list[str] = field(default_factory=list)

    def as_context(self) -> dict[str, dict[str, list[str]]]:
        """The health lists as the `run finished` line shows them."""
        return {"health": {"ok": self.ok, "failing": self.failing, "expiring": self.expiring}}


@dataclass
class Refreshed:
    """A token refreshed this run and not yet saved to the sheet."""

    account: Account
    token: str = field(repr=False)
    expires_at: float


@dataclass
class AccountsSheet:
    """The accounts sheet as read just before a write: rows are found by account name, so
    rows an analyst moved, inserted or deleted during the run are never written by mistake."""

    header: list[Any]
    width: int  # columns used by any row, so a new column never lands on unlabelled data
    rows: dict[str, tuple[int, list[Any]]]  # account name -> (1-based row, its cells)
    added: list[CellUpdate] = field(default_factory=list)  # header cells of new columns

    @classmethod
    def from_grid(cls, grid: list[list[Any]]) -> AccountsSheet:
        """Index a grid (header first) by account name; the first row of a name wins."""
        header = list(grid[0]) if grid else []
        name_at = find_column(header, NAME_COLUMN)
        rows: dict[str, tuple[int, list[Any]]] = {}
        for number, cells in enumerate(grid[1:], start=2):
            if name_at is not None and name_at < len(cells):
                name = str(cells[name_at]).strip()
                if name:
                    rows.setdefault(name, (number, cells))  # as parse_accounts keeps the first
        width = max((len(row) for row in grid), default=0)
        return cls(header, width, rows)

    def column(self, name: str) -> int:
        """1-based column of a tool column; a missing one is added at the right."""
        position = find_column(self.header, name)
        if position is None:
            position = self.width
            self.header += [""] * (position - len(self.header)) + [name]
            self.width = position + 1
            self.added.append(CellUpdate(1, position + 1, name))
        return position + 1

    def tool_columns(self) -> dict[str, int]:
        """All three health columns, adding the missing ones together and in order."""
        return {name: self.column(name) for name in HEALTH_COLUMNS}


def short_error(error: str) -> str:
    """An account's error as its last_error cell: redacted (never a token) and short."""
    return redact(error)[:LAST_ERROR_MAX_CHARS]


def _is_refusal(error: ThreadsError) -> bool:
    """Threads answered and said no (not a 5xx, a network failure or throttling)."""
    return error.status is not None and 400 <= error.status < 500 and not error.is_throttled


class TokenKeeper:
    """Refreshes tokens due for it and writes health columns, touching no other cell."""

    def __init__(
        self,
        sink: Sink,
        header: list[Any],
        client: ThreadsClient,
        refresh_days: float,
        state: dict[str, Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sink = sink
        self.client = client
        self.clock = clock
        self.refresh_window_s = refresh_days * DAY_S
        # The header the accounts were parsed under: it names the keys of Account.cells.
        self.header = list(header)
        self._expires: dict[str, float] = {}  # expiries saved to the sheet during this run
        tries = state.get(TRIES_KEY)
        now = clock()
        # Only tries within REFRESH_RETRY_S matter; dropping older ones keeps the names of
        # accounts removed from the sheet out of the state for good.
        self.tries: dict[str, float] = {
            name: when
            for name, when in (tries.items() if isinstance(tries, dict) else ())
            if isinstance(when, int | float) and now - when < REFRESH_RETRY_S
        }
        state[TRIES_KEY] = self.tries

    # -- expiry --

    def expires_at(self, account: Account) -> float | None:
        """The token's expiry (saved this run, else from the sheet), or None when unknown."""
        if account.name in self._expires:
            return self._expires[account.name]
        position = find_column(self.header, EXPIRES_COLUMN)
        if position is None:
            return None
        return parse_time(account.cells.get(str(self.header[position])))

    def is_expiring(self, account: Account, now: float) -> bool:
        """The expiry is known and within the refresh window (or already past)."""
        expires = self.expires_at(account)
        return expires is not None and expires - now <= self.refresh_window_s

    def is_due(self, account: Account) -> bool:
        """Refresh when the expiry is unknown or within the window, but not after a recent try."""
        now = self.clock()
        if self.expires_at(account) is not None and not self.is_expiring(account, now):
            return False
        return now - self.tries.get(account.name, 0.0) >= REFRESH_RETRY_S

    # -- refreshing --

    def refresh_due(self, accounts: list[Account]) -> None:
        """Refresh every due token, save the new ones to the sheet, and only then use them."""
        refreshed: list[Refreshed] = []
        for account in accounts:
            if not self.is_due(account):
                continue
            try:
                done = self._refresh(account)
            except RunStopped:
                break  # the deadline: keep what was refreshed, start nothing more
            if done is not None:
                refreshed.append(done)
        if refreshed:
            self._save_tokens(refreshed)

    def _refresh(self, account: Account) -> Refreshed | None:
        """Ask Threads for a new token; None (and a log line) when it did not give one."""
        self.tries[account.name] = self.clock()
        try:
            token, expires_in = self.client.refresh_token(account.token, account.name)
        except ThreadsError as error:
            self._refresh_failed(account, error)
            return None
        register_secret(token)  # before anything can log it
        return Refreshed(account, token, self.clock() + expires_in)

    def _refresh_failed(self, account: Account, error: ThreadsError) -> None:
        """Log a refresh that gave no token, at the level it deserves."""
        where = context(account=account.name, action="refresh_token")
        if error.is_token_error:
            # Expired or revoked: the sync then fails the account with the same error, which
            # sets last_error and the exit code; one error line for it is enough.
            log.info(
                "token of %s cannot be refreshed (%s)", account.name, error.describe(), extra=where
            )
        elif _is_refusal(error) and self._may_be_too_new(account):
            log.info(
                "token of %s not refreshed yet: Threads refreshes only tokens at least 24 hours "
                "old (%s); next try in %d h",
                account.name,
                error.describe(),
                REFRESH_RETRY_S // 3600,
                extra=where,
            )
        else:
            log.warning(
                "token refresh of %s failed (%s); using the current token",
                account.name,
                error.describe(),
                extra=where,
            )

    def _may_be_too_new(self, account: Account) -> bool:
        """The token may be under 24 hours old: its expiry is unknown, or says so."""
        expires = self.expires_at(account)
        if expires is None:
            return True  # just pasted by a user: the usual case
        return self.clock() - (expires - TOKEN_LIFETIME_S) < MIN_REFRESH_AGE_S

    def _save_tokens(self, refreshed: list[Refreshed]) -> None:
        """Write new tokens and expiries in one request; a token is used only once it is saved."""
        try:
            sheet = AccountsSheet.from_grid(self.sink.read_accounts())
        except SinkError as error:
            self._not_saved(refreshed, str(error))
            return
        token_at = find_column(sheet.header, TOKEN_COLUMN)
        if token_at is None:
            self._not_saved(refreshed, f"{ACCOUNTS_SHEET!r} has no {TOKEN_COLUMN} column any more")
            return
        columns = sheet.tool_columns()
        updates: list[CellUpdate] = []
        saved: list[Refreshed] = []
        for item in refreshed:
            problem = self._row_problem(sheet, token_at, item.account)
            if problem:
                self._not_saved([item], problem)
                continue
            row = sheet.rows[item.account.name][0]
            updates.append(CellUpdate(row, token_at + 1, item.token))
            updates.append(CellUpdate(row, columns[EXPIRES_COLUMN], utc_iso(item.expires_at)))
            saved.append(item)
        if not saved:
            return
        try:
            self.sink.write_account_cells(sheet.added + updates)
        except SinkError as error:
            self._not_saved(saved, str(error))
            return
        for item in saved:
            item.account.token = item.token
            self._expires[item.account.name] = item.expires_at
            log.info(
                "token of %s refreshed; it expires %s",
                item.account.name,
                utc_iso(item.expires_at),
                extra=context(account=item.account.name, action="refresh_token"),
            )

    @staticmethod
    def _row_problem(sheet: AccountsSheet, token_at: int, account: Account) -> str | None:
        """Why the account's row must not get its new token, or None."""
        found = sheet.rows.get(account.name)
        if found is None:
            return f"the account is no longer in {ACCOUNTS_SHEET!r}"
        cells = found[1]
        current = str(cells[token_at]).strip() if token_at < len(cells) else ""
        if current != account.token:
            # Somebody pasted another token during the run: theirs wins.
            return f"its {TOKEN_COLUMN} was changed in the sheet during the run"
        return None

    @staticmethod
    def _not_saved(refreshed: list[Refreshed], reason: str) -> None:
        """One error per new token that is not in the sheet; the run keeps the old ones."""
        for item in refreshed:
            log.error(
                "token of %s was refreshed but not saved to %s (%s); the token in the sheet is "
                "used and works until it expires",
                item.account.name,
                ACCOUNTS_SHEET,
                reason,
                extra=context(account=item.account.name, action="refresh_token"),
            )

    # -- health --

    def record(self, accounts: list[Account], outcomes: dict[str, AccountOutcome]) -> Health:
        """Write last_success_at / last_error for every synced account; return the health lists."""
        now = self.clock()
        health = Health()
        for account in accounts:
            outcome = outcomes.get(account.name)
            if outcome is None:
                continue  # not synced this run: nothing to say about it
            (health.failing if outcome.error else health.ok).append(account.name)
            if self.is_expiring(account, now):
                health.expiring.append(account.name)
        try:
            self._write_health(accounts, outcomes, now)
        except SinkError as error:
            log.error(
                "could not write account health to %s: %s",
                ACCOUNTS_SHEET,
                error,
                extra=context(action="account_health"),
            )
        return health

    def _write_health(
        self, accounts: list[Account], outcomes: dict[str, AccountOutcome], now: float
    ) -> None:
        """One read (the fetch may have lasted an hour) and one write of the health cells."""
        sheet = AccountsSheet.from_grid(self.sink.read_accounts())
        columns = sheet.tool_columns()
        updates: list[CellUpdate] = []
        for account in accounts:
            found, outcome = sheet.rows.get(account.name), outcomes.get(account.name)
            if found is None or outcome is None:
                continue  # removed from the sheet during the run, or not synced
            row = found[0]
            if outcome.error:
                updates.append(CellUpdate(row, columns[ERROR_COLUMN], short_error(outcome.error)))
            else:
                updates.append(CellUpdate(row, columns[SUCCESS_COLUMN], utc_iso(now)))
                updates.append(CellUpdate(row, columns[ERROR_COLUMN], ""))  # "" clears the cell
        if updates:
            self.sink.write_account_cells(sheet.added + updates)
