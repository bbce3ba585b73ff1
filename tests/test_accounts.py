"""Reading accounts_threads: flexible headers, skipped rows, duplicates, --accounts."""

from __future__ import annotations

import logging

import pytest

from accounts import AccountsError, parse_accounts, select_accounts
from logs import redact


def test_columns_are_found_case_and_whitespace_insensitively_and_others_ignored():
    grid = [["Notes", " Account_Name ", "ACCESS TOKEN", "x"], ["n", "alice", "tok-alice-123", 1]]
    grid[0][2] = "Access_Token "
    accounts = parse_accounts(grid)
    assert [(a.name, a.token, a.row) for a in accounts] == [("alice", "tok-alice-123", 2)]


def test_rows_without_name_or_token_are_skipped_with_a_warning(caplog):
    grid = [
        ["account_name", "access_token"],
        ["alice", ""],
        ["", "tok-orphan-1234567"],
        [],
        ["bob", "tok-bob-12345678"],
    ]
    with caplog.at_level(logging.WARNING):
        accounts = parse_accounts(grid)
    assert [a.name for a in accounts] == ["bob"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "accounts_threads row 2 has no access_token; skipped",
        "accounts_threads row 3 has no account_name; skipped",
    ]


def test_a_repeated_name_keeps_the_first_row(caplog):
    grid = [["account_name", "access_token"], ["a", "tok-first-123456"], ["a", "tok-second-12345"]]
    accounts = parse_accounts(grid)
    assert [(a.token, a.row) for a in accounts] == [("tok-first-123456", 2)]
    assert "appears again on row 3; keeping row 2" in caplog.text


def test_tokens_read_from_the_sheet_are_redacted_everywhere():
    parse_accounts([["account_name", "access_token"], ["a", "THAAsecret-token-value"]])
    assert redact("failed with THAAsecret-token-value") == "failed with ***"


def test_missing_token_column_is_a_clear_error():
    with pytest.raises(AccountsError, match="columns account_name and access_token"):
        parse_accounts([["account_name", "token"], ["a", "t"]])


def test_select_accounts_limits_the_run_and_rejects_unknown_names():
    accounts = parse_accounts(
        [["account_name", "access_token"], ["a", "tok-a-123456789"], ["b", "tok-b-123456789"]]
    )
    assert [a.name for a in select_accounts(accounts, ["b"])] == ["b"]
    assert select_accounts(accounts, None) == accounts
    with pytest.raises(AccountsError, match="not in accounts_threads: c"):
        select_accounts(accounts, ["b", "c"])
