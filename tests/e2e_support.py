"""Shared helpers of the end-to-end suite (tests/test_e2e.py): the oracle that computes the data
tab from the Threads world, exact checks of the sheet the real command left behind, and bounded
waiting on a running `python threads_metrics.py`.

The oracle is written from the simulator's side on purpose: it knows nothing of the product's
merge, so a change in what the product writes shows up as a difference here.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collect import utc_iso
from local_stack import SPREADSHEET_ID, LocalStack
from sheets_simulator import col_letters
from sink import ACCOUNTS_SHEET, DATA_SHEET
from threads_simulator import ThreadsWorld

Key = tuple[str, str]  # (account_name, post_id)

# The data tab as analysts know it: written by the tool in this order on a new sheet.
POST_COLUMNS = [
    "account_name",
    "post_id",
    "permalink",
    "text",
    "media_type",
    "media_url",
    "timestamp",
    "shortcode",
    "username",
    "is_quote_post",
]
METRIC_COLUMNS = ["views", "likes", "replies", "reposts", "quotes", "shares"]
UPDATED_AT = "updated_at"
DATA_HEADER = [*POST_COLUMNS, *METRIC_COLUMNS, UPDATED_AT]
TEXT_COLUMNS = [  # never a number, date, bool or formula, whatever the text looks like
    *("account_name", "post_id", "permalink", "text", "media_type", "media_url", "timestamp"),
    *("shortcode", "username", UPDATED_AT),
]
REPOST = "REPOST_FACADE"
ROW_HEIGHT_PX = 21
SIGTERM_EXIT = 143


@dataclass(frozen=True)
class FetchedAt:
    """Stands for an updated_at cell: ISO 8601 UTC text written no earlier than `after`."""

    after: float = 0.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        try:
            moment = datetime.strptime(other, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return False
        # updated_at has whole seconds: allow the second in which `after` falls.
        return int(self.after) <= moment.timestamp() <= time.time() + 1

    def __hash__(self) -> int:
        return hash(self.after)

    def __repr__(self) -> str:
        return f"FetchedAt(after={utc_iso(self.after)})"


# ---- the oracle --------------------------------------------------------------------------------


def expected_rows(
    world: ThreadsWorld, accounts: Iterable[str] | None = None, fetched_after: float = 0.0
) -> dict[Key, dict[str, Any]]:
    """Every listed (non-deleted) post of the accounts as the data tab must show it.

    Ids and texts exactly as posted, metrics as numbers, a metric the API leaves out as an
    empty cell, reposts without metrics and without updated_at.
    """
    names = list(world.accounts) if accounts is None else list(accounts)
    rows: dict[Key, dict[str, Any]] = {}
    for name in names:
        account = world.accounts[name]
        for post in world.posts_of(name):
            repost = post.media_type == REPOST
            row = {
                "account_name": name,
                "post_id": post.id,
                "permalink": post.permalink,
                "text": post.text if post.text is not None else "",
                "media_type": post.media_type,
                "media_url": post.media_url or "",
                "timestamp": post.timestamp_text,
                "shortcode": post.shortcode,
                "username": account.username,
                "is_quote_post": post.is_quote_post,
            }
            for metric in METRIC_COLUMNS:
                row[metric] = "" if repost else post.metrics.get(metric, "")
            row[UPDATED_AT] = "" if repost else FetchedAt(fetched_after)
            rows[(name, post.id)] = row
    return rows


def without_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """A row as it stands when its post was listed but its insights were not fetched yet."""
    return {**row, **dict.fromkeys(METRIC_COLUMNS, ""), UPDATED_AT: ""}


# ---- reading the sheet -------------------------------------------------------------------------


@dataclass
class DataTab:
    """The data tab after a run: header, post rows by key (with their sheet row) and the rest."""

    header: list[str]
    rows: dict[Key, dict[str, Any]]
    positions: dict[Key, int]  # 1-based sheet row of each post
    other_rows: list[int]  # 1-based sheet rows without a key (analysts' rows, blank rows)
    repeated: list[Key]


def read_data_tab(stack: LocalStack) -> DataTab:
    """The data tab as a values.get (UNFORMATTED_VALUE) returns it, split by post key."""
    values = stack.data()
    if not values:
        return DataTab([], {}, {}, [], [])
    header = [str(name) for name in values[0]]
    rows: dict[Key, dict[str, Any]] = {}
    positions: dict[Key, int] = {}
    other: list[int] = []
    repeated: list[Key] = []
    for number, raw in enumerate(values[1:], start=2):
        cells = list(raw) + [""] * (len(header) - len(raw))
        record = dict(zip(header, cells, strict=False))
        key = (record.get("account_name", ""), record.get("post_id", ""))
        if key == ("", ""):
            other.append(number)
            continue
        if key in rows:
            repeated.append(key)
        rows[key] = record
        positions[key] = number
    return DataTab(header, rows, positions, other, repeated)


def owned_part(row: dict[str, Any]) -> dict[str, Any]:
    """Only the tool's columns of a row (analysts' columns left out)."""
    return {name: row.get(name, "") for name in DATA_HEADER}


def assert_cell_kinds(stack: LocalStack, tab: DataTab) -> None:
    """post_id cells are text (all digits kept), no tool-written text is a formula, metrics are
    numbers: checked on the stored cells, not on what a values.get renders."""
    sheet = stack.sheets.sheet(SPREADSHEET_ID, DATA_SHEET)
    columns = {name: tab.header.index(name) for name in DATA_HEADER if name in tab.header}
    for key, row_number in tab.positions.items():
        for name, column in columns.items():
            cell = sheet.cells.get((row_number - 1, column))
            kind = None if cell is None or cell.kind == "empty" else cell.kind
            where = f"{col_letters(column)}{row_number} ({name} of {key})"
            assert kind != "formula", f"{where} became a formula: {cell}"
            if name == "post_id" or (name in TEXT_COLUMNS and kind is not None):
                assert kind == "string", f"{where} is not a text cell: {cell}"
            elif name in METRIC_COLUMNS and kind is not None:
                assert kind == "number", f"{where} is not a number: {cell}"


def assert_data_tab(
    stack: LocalStack,
    expected: dict[Key, dict[str, Any]],
    *,
    header: list[str] | None = None,
    other_rows: int = 0,
) -> DataTab:
    """The data tab holds exactly the expected posts, each once, with exact cells."""
    tab = read_data_tab(stack)
    assert tab.header == (header or DATA_HEADER)
    assert_cell_kinds(stack, tab)  # first: a number id explains every difference below
    assert tab.repeated == [], f"keys on more than one row: {tab.repeated[:5]}"
    assert len(tab.other_rows) == other_rows, f"rows without a key: {tab.other_rows[:5]}"
    missing = sorted(set(expected) - set(tab.rows))
    unexpected = sorted(set(tab.rows) - set(expected))
    assert not missing, f"{len(missing)} posts missing, e.g. {missing[:3]}"
    assert not unexpected, f"{len(unexpected)} rows not expected, e.g. {unexpected[:3]}"
    actual = {key: owned_part(row) for key, row in tab.rows.items()}
    wrong = [key for key in expected if actual[key] != expected[key]]
    if wrong:  # pytest shows the first difference in full
        assert actual[wrong[0]] == expected[wrong[0]], f"{len(wrong)} rows differ"
    return tab


def assert_partial_data_tab(stack: LocalStack, full: dict[Key, dict[str, Any]]) -> DataTab:
    """After an interrupted run: every row is a real post, once, either complete or listed
    without its insights yet; never a half-filled or invented row."""
    tab = read_data_tab(stack)
    assert tab.header == DATA_HEADER
    assert_cell_kinds(stack, tab)
    assert tab.repeated == [] and tab.other_rows == []
    unexpected = sorted(set(tab.rows) - set(full))
    assert not unexpected, f"rows that are no post: {unexpected[:3]}"
    for key, row in tab.rows.items():
        actual = owned_part(row)
        assert actual in (full[key], without_metrics(full[key])), key
    return tab


def assert_formatted(stack: LocalStack, tab: DataTab) -> None:
    """Every filled cell of the table clips its text, and every row of the grid is 21 px high.

    (The simulator keeps formats only on cells that hold something, so empty cells are not
    looked at.)
    """
    sheet = stack.sheets.sheet(SPREADSHEET_ID, DATA_SHEET)
    last_row = 1 + len(tab.rows) + len(tab.other_rows)
    for (row, column), cell in sorted(sheet.cells.items()):
        if row < last_row and column < len(tab.header) and cell.kind != "empty":
            ref = f"{col_letters(column)}{row + 1}"
            assert cell.format.get("wrapStrategy") == "CLIP", f"{ref} wraps: {cell}"
    heights = stack.sheets.row_heights(SPREADSHEET_ID, DATA_SHEET)
    assert heights == dict.fromkeys(range(sheet.row_count), ROW_HEIGHT_PX)


def account_cells(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """accounts_threads as {account_name: {column: value}}."""
    values = stack.sheets.values(SPREADSHEET_ID, ACCOUNTS_SHEET)
    header = values[0]
    return {
        row[0]: dict(zip(header, list(row) + [""] * (len(header) - len(row)), strict=False))
        for row in values[1:]
    }


# ---- the command's output ----------------------------------------------------------------------


def log_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON log lines the command printed on stdout."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_finished(stdout: str) -> dict[str, Any]:
    """The context of the `run finished` line, which must be the last line."""
    lines = log_lines(stdout)
    assert lines and lines[-1]["msg"] == "run finished", stdout[-2000:]
    return lines[-1]["context"]


def errors(stdout: str) -> list[str]:
    """Messages of the error lines."""
    return [line["msg"] for line in log_lines(stdout) if line["level"] == "error"]


def assert_no_secrets(stack: LocalStack, *texts: str) -> None:
    """No token any account ever had (refreshed ones too), and no private key, in the texts
    or in the state file."""
    state = stack.state_file.read_text() if stack.state_file.exists() else ""
    secrets = [*stack.threads.tokens, stack.key_info["private_key"].splitlines()[1]]
    for text in (*texts, state):
        for secret in secrets:
            assert secret not in text, "a secret leaked"
        assert "PRIVATE KEY" not in text


def describe(process: subprocess.CompletedProcess) -> str:
    """The end of a finished run's output, for assertion messages."""
    return f"exit {process.returncode}\nstdout: {process.stdout[-3000:]}\nstderr: {process.stderr}"


# ---- waiting -----------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.01
) -> None:
    """Poll until condition() is true; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


def load_state(path: Path) -> dict[str, Any]:
    """The state file as JSON."""
    return json.loads(path.read_text(encoding="utf-8"))
