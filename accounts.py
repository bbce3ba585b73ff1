"""The accounts sheet: which accounts to sync, with their tokens and their row in the sheet."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from logs import context, register_secret

log = logging.getLogger(__name__)

NAME_COLUMN = "account_name"
TOKEN_COLUMN = "access_token"


class AccountsError(Exception):
    """The accounts sheet cannot be used; the message says how to fix it."""


@dataclass
class Account:
    """One account to sync. `row` is its 1-based row in the accounts sheet."""

    name: str
    token: str = field(repr=False)
    row: int
    cells: dict[str, Any] = field(default_factory=dict, repr=False)


def normalize_header(value: Any) -> str:
    """Header text compared case- and whitespace-insensitively."""
    return "".join(str(value or "").split()).lower()


def find_column(header: list[Any], name: str) -> int | None:
    """0-based position of a column by its normalised name, or None."""
    wanted = normalize_header(name)
    for position, value in enumerate(header):
        if normalize_header(value) == wanted:
            return position
    return None


def cell_text(row: list[Any], position: int) -> str:
    """A cell as stripped text; a missing or empty cell is ""."""
    value = row[position] if position < len(row) else None
    return "" if value is None else str(value).strip()


def parse_accounts(grid: list[list[Any]]) -> list[Account]:
    """Accounts from the sheet's rows; empty or repeated rows are skipped with a warning."""
    header = grid[0] if grid else []
    name_at, token_at = find_column(header, NAME_COLUMN), find_column(header, TOKEN_COLUMN)
    if name_at is None or token_at is None:
        raise AccountsError(
            "sheet 'accounts_threads' needs a header row with the columns "
            f"{NAME_COLUMN} and {TOKEN_COLUMN}"
        )
    accounts: dict[str, Account] = {}
    for row_number, row in enumerate(grid[1:], start=2):
        cells = {str(title): value for title, value in zip(header, row, strict=False)}
        name, token = cell_text(row, name_at), cell_text(row, token_at)
        if token:
            register_secret(token)
        if not name and not token:
            continue  # a blank row: nothing to say
        if not name or not token:
            missing = NAME_COLUMN if not name else TOKEN_COLUMN
            log.warning(
                "accounts_threads row %d has no %s; skipped",
                row_number,
                missing,
                extra=context(account=name or None, action="skip_account"),
            )
        elif name in accounts:
            log.warning(
                "account %r appears again on row %d; keeping row %d",
                name,
                row_number,
                accounts[name].row,
                extra=context(account=name, action="skip_account"),
            )
        else:
            accounts[name] = Account(name, token, row_number, cells)
    return list(accounts.values())


def select_accounts(accounts: list[Account], wanted: list[str] | None) -> list[Account]:
    """Keep only the accounts named on the command line (all when none are named)."""
    if not wanted:
        return accounts
    by_name = {account.name: account for account in accounts}
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        names = ", ".join(unknown)
        raise AccountsError(f"--accounts names accounts not in accounts_threads: {names}")
    return [by_name[name] for name in wanted]
