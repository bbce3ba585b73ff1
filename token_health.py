"""Token lifecycle: refresh long-lived tokens before they expire, and keep each account's health
in the tool's own columns of the accounts sheet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accounts import TOKEN_COLUMN, Account, find_column
from collect import AccountOutcome, parse_time, utc_iso
from logs import context, register_secret
from run_control import RunStopped
from sink import CellUpdate, Sink, SinkError
from threads_api import ThreadsClient, ThreadsError

log = logging.getLogger(__name__)

EXPIRES_COLUMN = "token_expires_at"
SUCCESS_COLUMN = "last_success_at"
ERROR_COLUMN = "last_error"
HEALTH_COLUMNS = (EXPIRES_COLUMN, SUCCESS_COLUMN, ERROR_COLUMN)
LAST_ERROR_MAX_CHARS = 300
# A refused refresh (a token under 24 hours old) is tried again after this long, not every run.
REFRESH_RETRY_S = 6 * 3600
DAY_S = 86400


@dataclass
class Health:
    """Accounts by health, for the last log line."""

    ok: list[str] = field(default_factory=list)
    failing: list[str] = field(default_factory=list)
    expiring: list[str] = field(default_factory=list)

    def as_context(self) -> dict[str, dict[str, list[str]]]:
        """The health lists as the `run finished` line shows them."""
        return {"health": {"ok": self.ok, "failing": self.failing, "expiring": self.expiring}}


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
        self.refresh_window_s = refresh_days * DAY_S
        self.tries = state.setdefault("token_refresh_tried_at", {})
        self.clock = clock
        self.header = list(header)
        self._header_updates: list[CellUpdate] = []

    def column(self, name: str) -> int:
        """1-based column of a health column, added at the right of the header when missing."""
        position = find_column(self.header, name)
        if position is None:
            self.header.append(name)
            position = len(self.header) - 1
            self._header_updates.append(CellUpdate(1, position + 1, name))
        return position + 1

    def _write(self, updates: list[CellUpdate]) -> None:
        """Write cells together with any header cells still to be added."""
        self.sink.write_account_cells(self._header_updates + updates)
        self._header_updates = []

    def expires_at(self, account: Account) -> float | None:
        """The token's expiry from the sheet, or None when unknown."""
        return parse_time(account.cells.get(EXPIRES_COLUMN))

    def is_due(self, account: Account) -> bool:
        """Refresh when the expiry is unknown or within the window, but not after a recent try."""
        now = self.clock()
        expires = self.expires_at(account)
        if expires is not None and expires - now > self.refresh_window_s:
            return False
        return now - self.tries.get(account.name, 0) >= REFRESH_RETRY_S

    def refresh_due(self, accounts: list[Account]) -> None:
        """Refresh every due token and write the new one back into its row at once."""
        for account in accounts:
            if self.is_due(account):
                try:
                    self._refresh(account)
                except RunStopped:
                    return

    def _refresh(self, account: Account) -> None:
        where = context(account=account.name, action="refresh_token")
        self.tries[account.name] = self.clock()
        try:
            token, expires_in = self.client.refresh_token(account.token, account.name)
        except ThreadsError as error:
            if error.is_token_error:
                return  # expired or revoked: the sync reports it as the account's error
            if self.expires_at(account) is None:
                log.info(
                    "token not refreshed yet (%s); tried again later", error.describe(), extra=where
                )
            else:
                log.warning(
                    "token refresh failed (%s); using the current token",
                    error.describe(),
                    extra=where,
                )
            return
        register_secret(token)
        expires = utc_iso(self.clock() + expires_in)
        account.token, account.cells[EXPIRES_COLUMN] = token, expires
        token_column = (find_column(self.header, TOKEN_COLUMN) or 0) + 1
        try:
            self._write(
                [
                    CellUpdate(account.row, token_column, token),
                    CellUpdate(account.row, self.column(EXPIRES_COLUMN), expires),
                ]
            )
        except SinkError as error:
            log.error(
                "token refreshed but not saved to accounts_threads (%s); the old token "
                "works until it expires",
                error,
                extra=where,
            )
            return
        log.info("token refreshed; expires %s", expires, extra=where)

    def record(self, accounts: list[Account], outcomes: dict[str, AccountOutcome]) -> Health:
        """Write last_success_at / last_error for every account; return the health lists."""
        health, updates, now = Health(), [], self.clock()
        for account in accounts:
            error = outcomes[account.name].error if account.name in outcomes else None
            if error:
                health.failing.append(account.name)
                updates.append(
                    CellUpdate(account.row, self.column(ERROR_COLUMN), error[:LAST_ERROR_MAX_CHARS])
                )
            else:
                health.ok.append(account.name)
                updates.append(CellUpdate(account.row, self.column(SUCCESS_COLUMN), utc_iso(now)))
                updates.append(CellUpdate(account.row, self.column(ERROR_COLUMN), ""))
            expires = self.expires_at(account)
            if expires is not None and expires - now <= self.refresh_window_s:
                health.expiring.append(account.name)
        try:
            self._write(updates)
        except SinkError as error:
            log.error(
                "could not write account health to accounts_threads: %s",
                error,
                extra=context(action="account_health"),
            )
        return health
