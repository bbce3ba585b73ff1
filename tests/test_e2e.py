"""End to end: the real command, `python threads_metrics.py`, as GitHub Actions starts it, in a
subprocess whose only settings are environment variables pointing it at the Threads simulator
and the Sheets simulator on 127.0.0.1 (local_stack.py). Real HTTP, real threads, real signals.

Each scenario ends by checking the whole data tab against what the Threads world holds
(e2e_support.expected_rows): every post exactly once, ids as text with all their digits, texts
as posted and never a formula, metrics as numbers, analysts' cells where they left them,
formats, and the exit code. Waits are bounded; the suite takes about 1.5 minutes on 2 cores.
"""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from e2e_support import (
    DATA_HEADER,
    SIGTERM_EXIT,
    UPDATED_AT,
    DataTab,
    FetchedAt,
    account_cells,
    assert_data_tab,
    assert_formatted,
    assert_no_secrets,
    assert_partial_data_tab,
    describe,
    errors,
    expected_rows,
    load_state,
    log_lines,
    owned_part,
    read_data_tab,
    run_finished,
    wait_until,
)

from local_stack import SPREADSHEET_ID, LocalStack, local_stack
from sheets_simulator import Cell, SheetsWorld, col_letters
from sink import DATA_SHEET
from threads_simulator import FaultPlan, ThreadsWorld, make_demo_world, make_world

RUN_TIMEOUT_S = 90.0  # one run; the slowest (3,000 insights) takes about 15 s
REPOST = "REPOST_FACADE"
SID = SPREADSHEET_ID


# ---- running the command -----------------------------------------------------------------------


class Runs:
    """Starts `python threads_metrics.py` against a stack and remembers every process, so that
    none outlives its test."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, stack: LocalStack, **env: str) -> subprocess.Popen:
        """Start a run in the background, as GitHub Actions starts it."""
        process = stack.start_sync(**env)
        self.processes.append(process)
        return process

    @staticmethod
    def finish(
        process: subprocess.Popen, timeout_s: float = RUN_TIMEOUT_S
    ) -> subprocess.CompletedProcess:
        """Wait for a started run; a run that overstays is killed and fails the test."""
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate(timeout=10)
            raise AssertionError(f"run still going after {timeout_s} s: {stdout[-2000:]}") from None
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def run(self, stack: LocalStack, **env: str) -> subprocess.CompletedProcess:
        """Run to the end."""
        return self.finish(self.start(stack, **env))

    def run_ok(self, stack: LocalStack, **env: str) -> subprocess.CompletedProcess:
        """Run to the end and require exit 0."""
        result = self.run(stack, **env)
        assert result.returncode == 0, describe(result)
        return result

    def kill_leftovers(self) -> None:
        """Kill the processes of this test that are still running (each by its own handle)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)


@pytest.fixture
def runs() -> Iterator[Runs]:
    """The runs of one test; whatever still runs at its end is killed."""
    tracker = Runs()
    yield tracker
    tracker.kill_leftovers()


# ---- reading what the simulators saw ------------------------------------------------------------


def served(world: ThreadsWorld, kind: str) -> int:
    """Threads requests of one kind (list, insights, refresh) served since the last reset."""
    with world.lock:
        return world.stats.by_kind[kind]


def list_calls_by_account(world: ThreadsWorld) -> Counter[str]:
    """List requests per account since the last reset."""
    with world.lock:
        return Counter(account for kind, account, _ in world.stats.log if kind == "list")


def insights_due(world: ThreadsWorld, accounts: list[str] | None = None) -> int:
    """Listed posts that have insights (reposts have none)."""
    names = accounts or list(world.accounts)
    return sum(p.media_type != REPOST for name in names for p in world.posts_of(name))


def data_tab_writes(sheets: SheetsWorld) -> list[tuple[str, str, str, int]]:
    """Requests that write the data tab or the spreadsheet's layout (accounts cells excluded)."""
    return [
        entry
        for entry in sheets.stats.log
        if entry[2] in ("values_update", "values_append", "batch_update")
    ]


def non_repost_ids(world: ThreadsWorld, name: str) -> list[str]:
    """Ids of the account's listed posts that have insights."""
    return [p.id for p in world.posts_of(name) if p.media_type != REPOST]


# ---- 1. first run, then a second run at once ----------------------------------------------------


def test_first_run_writes_every_post_once_and_an_immediate_rerun_only_lists(tmp_path, runs):
    """A new sheet gets every post once, exactly; a rerun within the TTL asks for no insights,
    lists each account at most once and sends nothing to the data tab."""
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        began = time.time()
        first = runs.run_ok(stack)

        tab = assert_data_tab(stack, expected_rows(world, fetched_after=began))
        assert_formatted(stack, tab)
        assert served(world, "insights") == insights_due(world)  # never for a repost
        summary = run_finished(first.stdout)
        assert summary["posts_new"] == len(tab.rows) and summary["stopped_early"] is False
        health = account_cells(stack)
        assert all(row["last_success_at"] and not row["last_error"] for row in health.values())

        sheet_after_first = stack.data("FORMULA")
        world.reset_stats()
        stack.sheets.reset_stats()
        second = runs.run_ok(stack)

        assert served(world, "insights") == 0
        calls = list_calls_by_account(world)
        assert set(calls) <= set(world.accounts) and max(calls.values()) <= 1, calls
        assert stack.data("FORMULA") == sheet_after_first  # not one cell changed
        assert data_tab_writes(stack.sheets) == []  # nothing changed, nothing sent
        summary = run_finished(second.stdout)
        counts = {
            name: summary[name] for name in ("posts_new", "posts_updated", "insights_fetched")
        }
        assert counts == {"posts_new": 0, "posts_updated": 0, "insights_fetched": 0}
        assert_no_secrets(stack, first.stdout, first.stderr, second.stdout, second.stderr)


# ---- 2. new posts between runs; metrics change; the TTL expires or not --------------------------


def change_the_world(world: ThreadsWorld) -> tuple[list[str], str]:
    """New posts on every account (one of them listed late, one hostile), metric changes on
    every third post, and one post deleted. Returns the new ids and the deleted id."""
    anna, ivan, coffee = list(world.accounts)
    now, newest_listed = world.clock(), world.posts_of(anna)[0].timestamp
    new = [
        world.add_post(anna, "Новый пост после первого прогона 🚀", timestamp=now).id,
        world.add_post(ivan, '=HYPERLINK("http://evil","click")', timestamp=now).id,
        world.add_post(coffee, media_type="IMAGE", timestamp=now - timedelta(minutes=5)).id,
    ]
    # Shows up only now, although it is a little older than anna's newest listed post.
    new.append(world.add_post(anna, "0012", timestamp=newest_listed - timedelta(minutes=20)).id)
    for name in world.accounts:
        for post_id in non_repost_ids(world, name)[::3]:
            world.bump_metrics(post_id, views=1000, likes=7, shares=1)
    deleted = non_repost_ids(world, coffee)[-1]
    world.delete_post(deleted)
    return new, deleted


@pytest.mark.parametrize("ttl_expired", [True, False], ids=["ttl_expired", "within_ttl"])
def test_new_posts_and_changed_metrics_reach_the_sheet_when_the_ttl_allows(
    tmp_path, runs, ttl_expired
):
    """New posts (one listed late, one with a formula-like text) go below the old rows, oldest
    first; metrics are fetched again only once the TTL has expired; a deleted post keeps its row."""
    ttl_min = "0.01" if ttl_expired else "60"  # 0.6 s, or the default hour
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        runs.run_ok(stack, THREADS_METRICS_TTL_MIN=ttl_min)
        before = read_data_tab(stack)
        new_ids, deleted = change_the_world(world)
        if ttl_expired:
            time.sleep(1.0)
        world.reset_stats()
        began = time.time()
        runs.run_ok(stack, THREADS_METRICS_TTL_MIN=ttl_min)

        expected = expected_rows(world, fetched_after=began)
        deleted_key = next(key for key in before.rows if key[1] == deleted)
        expected[deleted_key] = owned_part(before.rows[deleted_key])  # its row stays as it was
        if not ttl_expired:  # old posts keep the metrics and marks of the first run
            for key in before.rows:
                expected[key] = owned_part(before.rows[key])
        tab = assert_data_tab(stack, expected)
        assert_formatted(stack, tab)

        # Old rows stay where they were; new ones follow, oldest first.
        assert {key: tab.positions[key] for key in before.positions} == before.positions
        new_keys = sorted(set(tab.rows) - set(before.rows), key=lambda k: tab.positions[k])
        assert {key[1] for key in new_keys} == set(new_ids)
        assert min(tab.positions[key] for key in new_keys) > max(before.positions.values())
        stamps = [tab.rows[key]["timestamp"] for key in new_keys]
        assert stamps == sorted(stamps)

        if ttl_expired:  # every listed post, and the deleted one once (it answers code 100/33)
            assert served(world, "insights") == insights_due(world) + 1
        else:  # only the new posts
            assert served(world, "insights") == len(new_ids)


# ---- 3. analysts' edits: moved columns, own columns with values and formulas, notes ------------

ANALYST_ORDER = [
    "post_id",
    "account_name",
    "Заметка",
    "text",
    "views",
    "ER",
    "likes",
    "replies",
    "reposts",
    "quotes",
    "shares",
    "media_type",
    "permalink",
    "media_url",
    "timestamp",
    "shortcode",
    "username",
    "is_quote_post",
    "updated_at",
    "Ответственный",
]
NOTES = ["важно", "NA", "0012", "TRUE", "2025-06-01", "=1+1", "  пробелы  ", "'апостроф"]


def move_columns(stack: LocalStack, order: list[str]) -> None:
    """What dragging columns in the Sheets UI does: values and formats move with the column.
    Names not yet in the header become empty columns at their place. (Edits the simulator's grid
    directly, between runs, when no request is in flight.)"""
    sheet = stack.sheets.sheet(SID, DATA_SHEET)
    header = [sheet.cells[(0, column)].value for column in range(len(DATA_HEADER))]
    target = {header.index(name): order.index(name) for name in header}
    sheet.cells = {(row, target[column]): cell for (row, column), cell in sheet.cells.items()}
    for column, name in enumerate(order):
        if name not in header:
            stack.sheets.set_values(SID, DATA_SHEET, [[name]], start=f"{col_letters(column)}1")


def sort_rows(stack: LocalStack, tab: DataTab, key_order: list[tuple[str, str]]) -> None:
    """What sorting the data range in the UI does: whole rows move."""
    sheet = stack.sheets.sheet(SID, DATA_SHEET)
    target = {tab.positions[key] - 1: row for row, key in enumerate(key_order, start=1)}
    sheet.cells = {
        (target.get(row, row), column): cell for (row, column), cell in sheet.cells.items()
    }


def analyst_batch_update(stack: LocalStack, requests: list[dict[str, Any]]) -> None:
    """An analyst's change sent as the Sheets UI would (spreadsheets.batchUpdate)."""
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{SID}:batchUpdate"
    body = json.dumps({"requests": requests}).encode()
    answer = stack.sheets.handle("POST", url, {"Authorization": "Bearer analyst"}, body)
    assert answer.status == 200, answer.body


def with_clipping(cell: Cell) -> Cell:
    """The cell once the tool has turned wrapping off on the table (its only format change)."""
    return cell._replace(format={**cell.format, "wrapStrategy": "CLIP"})


def test_analysts_columns_formulas_notes_order_and_formats_survive_a_run(tmp_path, runs):
    """An analyst moved the tool's columns, added columns with values and formulas, typed notes,
    sorted the rows and formatted cells: the next run updates the tool's cells where they now
    stand and changes nothing of the analyst's."""
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        runs.run_ok(stack, THREADS_METRICS_TTL_MIN="0")
        first = read_data_tab(stack)
        sheet = stack.sheets.sheet(SID, DATA_SHEET)
        gid = sheet.sheet_id

        # The analyst moves columns, adds three of their own, sorts by views and types notes.
        move_columns(stack, ANALYST_ORDER)
        by_views = sorted(first.rows, key=lambda key: -(first.rows[key]["views"] or -1))
        sort_rows(stack, first, by_views)
        col = {name: col_letters(i) for i, name in enumerate(ANALYST_ORDER)}
        rows = len(by_views) + 1
        for row in range(2, rows + 1):
            formula = f'=IFERROR({col["likes"]}{row}/{col["views"]}{row},"")'
            stack.sheets.set_values(SID, DATA_SHEET, [[formula]], start=f"{col['ER']}{row}")
        for offset, note in enumerate(NOTES):
            start = f"{col['Заметка']}{2 + offset * 5}"
            stack.sheets.set_values(SID, DATA_SHEET, [[note]], start=start)
        stack.sheets.set_values(
            SID, DATA_SHEET, [["Маша"], ["Петя"]], start=f"{col['Ответственный']}3"
        )
        analyst_batch_update(
            stack,
            [
                {
                    "repeatCell": {
                        "range": {"sheetId": gid, "startRowIndex": 0, "endRowIndex": 1},
                        "cell": {
                            "userEnteredFormat": {
                                "backgroundColor": {"red": 1, "green": 0.9, "blue": 0.6},
                                "textFormat": {"bold": True},
                            }
                        },
                        "fields": "userEnteredFormat(backgroundColor,textFormat)",
                    }
                },
                {
                    "repeatCell": {
                        "range": {
                            "sheetId": gid,
                            "startRowIndex": 1,
                            "startColumnIndex": ANALYST_ORDER.index("views"),
                            "endColumnIndex": ANALYST_ORDER.index("views") + 1,
                        },
                        "cell": {
                            "userEnteredFormat": {
                                "numberFormat": {"type": "NUMBER", "pattern": "#,##0"}
                            }
                        },
                        "fields": "userEnteredFormat.numberFormat",
                    }
                },
            ],
        )
        analyst_columns = [i for i, name in enumerate(ANALYST_ORDER) if name not in DATA_HEADER]
        analyst_cells = {
            (row, column): cell
            for (row, column), cell in sheet.cells.items()
            if column in analyst_columns and cell.kind != "empty"
        }
        arranged = read_data_tab(stack)
        formats = {
            ref: stack.sheets.cell_format(SID, DATA_SHEET, ref) for ref in ("A1", "E2", "E9")
        }

        # New posts arrive and every metric is fetched again.
        new_post = world.add_post(list(world.accounts)[0], "после правок аналитика").id
        for name in world.accounts:
            for post_id in non_repost_ids(world, name):
                world.bump_metrics(post_id, views=5)
        began = time.time()
        runs.run_ok(stack, THREADS_METRICS_TTL_MIN="0")

        tab = assert_data_tab(
            stack, expected_rows(world, fetched_after=began), header=ANALYST_ORDER
        )
        # The analyst's rows order holds; the new post comes last.
        assert {key: tab.positions[key] for key in arranged.positions} == arranged.positions
        assert tab.positions[(list(world.accounts)[0], new_post)] == rows + 1
        # Every analyst cell is still there, same kind, same value, same format.
        after = stack.sheets.sheet(SID, DATA_SHEET).cells
        changed = {
            at: (cell, after.get(at))
            for at, cell in analyst_cells.items()
            if after.get(at) != with_clipping(cell)
        }
        assert changed == {}
        kinds = {after[(1 + 5 * i, ANALYST_ORDER.index("Заметка"))].kind for i in range(len(NOTES))}
        assert kinds == {"string", "number", "bool", "formula"}
        assert after[(1, ANALYST_ORDER.index("ER"))].kind == "formula"
        assert not any(
            cell.kind != "empty"
            for (_, column), cell in after.items()
            if column >= len(ANALYST_ORDER)
        ), "the tool added a column"
        # The analyst's formats are kept; the tool only adds clipping and row heights.
        for ref, fmt in formats.items():
            assert stack.sheets.cell_format(SID, DATA_SHEET, ref) == {**fmt, "wrapStrategy": "CLIP"}
        assert_formatted(stack, tab)


def test_an_analysts_totals_row_below_the_posts_keeps_its_formulas(tmp_path, runs):
    """An analyst's row without a post key (totals under the table) is theirs, formulas and
    typed dates included, even where it crosses the tool's columns, and even when the metrics
    of the rows above it are refreshed."""
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        runs.run_ok(stack)
        last = len(stack.data())
        col = {name: col_letters(i) for i, name in enumerate(DATA_HEADER)}
        totals = {
            "text": "Итого",
            "views": f"=SUM({col['views']}2:{col['views']}{last})",
            "likes": f"=SUM({col['likes']}2:{col['likes']}{last})",
            "updated_at": "2025-06-01",
        }
        for name, typed in totals.items():
            stack.sheets.set_values(SID, DATA_SHEET, [[typed]], start=f"{col[name]}{last + 2}")
        sheet = stack.sheets.sheet(SID, DATA_SHEET)
        before = {at: cell for at, cell in sheet.cells.items() if at[0] == last + 1}
        world.add_post(list(world.accounts)[0], "пост под итогами")
        for name in world.accounts:  # an hour later: every metric is fetched again
            for post_id in non_repost_ids(world, name):
                world.bump_metrics(post_id, views=3)
        began = time.time()
        runs.run_ok(stack, THREADS_METRICS_TTL_MIN="0")

        expected = expected_rows(world, fetched_after=began)
        assert_data_tab(stack, expected, other_rows=2)  # the blank row and the totals row
        after = stack.sheets.sheet(SID, DATA_SHEET).cells
        assert {at: after.get(at) for at in before} == {
            at: with_clipping(cell) for at, cell in before.items()
        }


# ---- 4. a flaky Threads API and a Sheets API that answers 429 to the first writes ---------------


def test_flaky_apis_retried_to_an_exact_sheet(tmp_path, runs):
    """15 % HTTP 500, throttling (codes 4, 17, 32, 613, 80001 with HTTP 400 and 403), 429 and
    dropped connections from Threads, 429 from Sheets on the first writes: exit 0, exact sheet."""
    # Every request draws its fault from one seeded sequence, so how many faults of each kind
    # are served is fixed by the seed (which request gets them depends on the threads). The
    # rates keep a request failing six times in a row (urllib3 gives up) unlikely: 0.18^6.
    world = make_world(2, 60, seed=5)
    world.faults = FaultPlan(
        seed=5, error_500_rate=0.15, throttle_rate=0.04, rate_429=0.015, drop_rate=0.015
    )
    with local_stack(world, tmp_path) as stack:
        stack.sheets.script("POST", r"/values:batchUpdate$", [(429, {"Retry-After": "1"})])
        stack.sheets.script("PUT", r"/values/", [(429, {"Retry-After": "1"})])
        began = time.time()
        result = runs.run_ok(stack)

        assert_formatted(stack, assert_data_tab(stack, expected_rows(world, fetched_after=began)))
        faults = world.stats.faults
        assert faults["error_500"] >= 15 and faults["drop"] > 0 and faults["rate_429"] > 0
        assert faults["throttle"] >= 5  # codes 4, 17, 32, 613 and 80001 with HTTP 400 and 403
        writes = [entry[2] for entry in stack.sheets.stats.log if entry[0] != "GET"]
        assert writes.count("values_update") == 2  # the data write: 429, then accepted
        assert run_finished(result.stdout)["failed_accounts"] == []
        assert_no_secrets(stack, result.stdout, result.stderr)


# ---- 5. one account's token expired --------------------------------------------------------------


@pytest.mark.parametrize("when", ["before_the_first_run", "between_runs"])
def test_an_expired_token_fails_only_its_account_and_exits_1(tmp_path, runs, when):
    """One token expired: the other accounts are written, the account's rows stay as they were,
    its last_error and the log say what to do, and the run exits 1."""
    world = make_demo_world()
    anna, ivan, coffee = list(world.accounts)
    with local_stack(world, tmp_path) as stack:
        before = None
        if when == "between_runs":
            runs.run_ok(stack)
            before = read_data_tab(stack)
            for name in world.accounts:
                world.add_post(name, f"свежий пост {name}")
            world.reset_stats()
        world.expire_token(ivan)
        began = time.time()
        result = runs.run(stack)

        assert result.returncode == 1, describe(result)
        expected = expected_rows(world, [anna, coffee], fetched_after=began)
        if before is not None:  # within the TTL, and ivan's rows as the last good run left them
            expected |= {key: owned_part(row) for key, row in before.rows.items()}
        tab = assert_data_tab(stack, expected)
        assert_formatted(stack, tab)
        summary = run_finished(result.stdout)
        assert summary["failed_accounts"] == [ivan]
        assert summary["health"]["failing"] == [ivan]
        [message] = errors(result.stdout)
        assert ivan in message and "paste a new token" in message
        health = account_cells(stack)
        assert "expired" in health[ivan]["last_error"]
        assert all(health[name]["last_error"] == "" for name in (anna, coffee))
        # Nothing is asked with the expired token; within the TTL only the new posts are.
        asked = 2 if before is not None else insights_due(world, [anna, coffee])
        assert served(world, "insights") == asked
        assert_no_secrets(stack, result.stdout, result.stderr)


# ---- 6. the deadline cuts a 3,000-post crawl -----------------------------------------------------


def test_the_deadline_cuts_a_long_crawl_and_the_next_run_finishes_it(tmp_path, runs):
    """THREADS_RUN_TIMEOUT_MIN cuts the first crawl of 3,000 posts: what was listed is written
    and the cursors saved (exit 0); the next run resumes at the cursors; every post once."""
    world = make_world(3, 1000, seed=6)
    pages = 3 * 10  # 100 posts a page
    world.faults = FaultPlan(latency_s=0.4)
    with local_stack(world, tmp_path) as stack:
        cut = runs.run_ok(stack, THREADS_RUN_TIMEOUT_MIN="0.05")  # 3 s

        assert run_finished(cut.stdout)["stopped_early"] is True
        listed_first = served(world, "list")
        assert listed_first < pages
        full = expected_rows(world)
        partial = assert_partial_data_tab(stack, full)
        assert 0 < len(partial.rows) < len(full)
        state = load_state(stack.state_file)["accounts"]
        assert all(not entry["crawl_done"] and entry["crawl_after"] for entry in state.values())

        world.faults = FaultPlan()
        world.reset_stats()
        began = time.time()
        runs.run_ok(stack)

        assert_data_tab(stack, expected_rows(world, fetched_after=began))
        # Resumed at the cursors: the pages of the first run are not listed again (one extra
        # short list per account looks for posts newer than the newest stored).
        assert listed_first + served(world, "list") <= pages + 3
        assert all(
            entry["crawl_done"] for entry in load_state(stack.state_file)["accounts"].values()
        )


# ---- 7. signals ----------------------------------------------------------------------------------


def slow_world() -> ThreadsWorld:
    """300 posts on two accounts; with latency a run lasts a few seconds."""
    world = make_world(2, 150, seed=7)
    world.faults = FaultPlan(latency_s=0.03)
    return world


def test_sigterm_stops_gracefully_and_the_next_run_completes(tmp_path, runs):
    """SIGTERM mid-run: requests in flight finish, what was fetched is written, exit 143; the
    next run asks only for what is still missing."""
    world = slow_world()
    with local_stack(world, tmp_path) as stack:
        process = runs.start(stack, THREADS_CONCURRENCY="4")
        wait_until(lambda: served(world, "insights") >= 40, 30, "insights requests")
        process.send_signal(signal.SIGTERM)
        stopped = runs.finish(process, 30)

        assert stopped.returncode == SIGTERM_EXIT, describe(stopped)
        assert run_finished(stopped.stdout)["stopped_early"] is True
        full = expected_rows(world)
        partial = assert_partial_data_tab(stack, full)  # what was fetched is saved
        fetched = sum(bool(row[UPDATED_AT]) for row in partial.rows.values())
        assert fetched >= 40 and fetched < insights_due(world)
        assert stack.state_file.exists()

        world.faults = FaultPlan()
        world.reset_stats()
        began = time.time()
        result = runs.run_ok(stack)

        expected = expected_rows(world, fetched_after=began)
        for key, row in partial.rows.items():  # fetched before the stop: kept, not asked again
            if row[UPDATED_AT]:
                expected[key] = owned_part(row)
        assert_formatted(stack, assert_data_tab(stack, expected))
        assert served(world, "insights") == insights_due(world) - fetched
        assert_no_secrets(stack, stopped.stdout, stopped.stderr, result.stdout, result.stderr)


SHEETS_BATCH_UPDATE = r"^/v4/spreadsheets/[^/]+:batchUpdate$"


def fail_formatting_after_the_rows(sheets: SheetsWorld) -> None:
    """Once the rows are written (a PUT on the data tab), answer the next two
    spreadsheets.batchUpdate (the formatting) with 503. Armed from inside the simulator, because
    gspread-dataframe also sends a resize through batchUpdate just before the rows."""
    handle = sheets.handle
    armed: list[bool] = []

    def arming_handle(method: str, url: str, headers: Any = None, body: bytes = b"") -> Any:
        if method == "PUT" and DATA_SHEET in unquote(url) and not armed:
            armed.append(True)
            sheets.script("POST", SHEETS_BATCH_UPDATE, [503, 503])
        return handle(method, url, headers, body)

    sheets.handle = arming_handle  # type: ignore[method-assign]


def scripted_answers_served(sheets: SheetsWorld) -> bool:
    """True once scripted answers exist and every one of them has been sent."""
    with sheets._lock:  # the simulator offers no public view of its scripts
        scripts = list(sheets._scripts)
    return bool(scripts) and not any(answers for _, _, answers in scripts)


@pytest.mark.parametrize(
    "moment", ["while_fetching", "while_the_rows_are_sent", "after_the_rows_before_the_state"]
)
def test_sigkill_at_any_moment_loses_nothing_and_duplicates_nothing(tmp_path, runs, moment):
    """SIGKILL while fetching, while the rows are being sent, or after the rows were written but
    before the state was saved: the next run completes the sheet exactly, without duplicates
    and without asking again for insights the sheet already holds."""
    world = slow_world() if moment == "while_fetching" else make_world(2, 150, seed=7)
    with local_stack(world, tmp_path) as stack:
        stack.sheets.add_sheet(SID, DATA_SHEET)  # an empty tab made ready by an analyst
        if moment == "while_the_rows_are_sent":
            # Two 503s, then urllib3 waits 4 s before trying again: the kill lands in that wait.
            stack.sheets.script("PUT", r"/values/", [503, 503])
        if moment == "after_the_rows_before_the_state":
            fail_formatting_after_the_rows(stack.sheets)
        process = runs.start(stack)

        if moment == "while_fetching":
            wait_until(lambda: served(world, "insights") >= 40, 30, "insights requests")
        else:
            wait_until(lambda: scripted_answers_served(stack.sheets), 60, "two 503 answers")
        process.send_signal(signal.SIGKILL)
        killed = runs.finish(process, 30)

        assert killed.returncode == -signal.SIGKILL
        assert not stack.state_file.exists()  # marks are saved only after their rows
        rows_written = moment == "after_the_rows_before_the_state"
        if rows_written:
            assert_data_tab(stack, expected_rows(world))
        else:
            assert stack.data() == []
        world.faults = FaultPlan()
        world.reset_stats()
        began = time.time()
        runs.run_ok(stack)

        tab = assert_data_tab(
            stack, expected_rows(world, fetched_after=0 if rows_written else began)
        )
        # No storm: the rows' updated_at stands in for the lost marks.
        assert served(world, "insights") == (0 if rows_written else insights_due(world))
        assert_formatted(stack, tab)  # also the formatting the killed run never sent


# ---- 8. the state file corrupt or gone -----------------------------------------------------------

BROKEN_STATES = {  # what is found in place of the state file, from what was there
    "truncated_json": lambda raw: raw[: len(raw) // 2],
    "not_json": lambda raw: b"garbage, not JSON",
    "not_utf8": lambda raw: b"\xff\xfe\x00\x89 binary",
    "wrong_shape": lambda raw: json.dumps({"version": 1, "accounts": ["anna"]}).encode(),
    "empty_file": lambda raw: b"",
}


@pytest.mark.parametrize("damage", [*BROKEN_STATES, "deleted"])
def test_a_corrupt_or_lost_state_file_costs_no_insights_storm(tmp_path, runs, damage):
    """A corrupt state file is moved aside with a warning, a deleted one is just missing: the
    next run relies on the sheet's updated_at and asks insights for the new post only."""
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        runs.run_ok(stack)
        raw = stack.state_file.read_bytes()
        if damage == "deleted":
            stack.state_file.unlink()
        else:
            stack.state_file.write_bytes(BROKEN_STATES[damage](raw))
        anna = list(world.accounts)[0]
        new_post = world.add_post(anna, "пост после потери состояния").id
        world.reset_stats()
        began = time.time()
        result = runs.run_ok(stack)

        expected = expected_rows(world)
        expected[(anna, new_post)][UPDATED_AT] = FetchedAt(began)
        assert_data_tab(stack, expected)
        assert served(world, "insights") == 1  # only the new post
        assert load_state(stack.state_file)["accounts"]  # a good state again
        aside = list(stack.state_file.parent.glob(stack.state_file.name + ".corrupt-*"))
        warnings = [line["msg"] for line in log_lines(result.stdout) if line["level"] == "warning"]
        if damage == "deleted":
            assert aside == [] and warnings == []
        else:
            assert len(aside) == 1 and aside[0].read_bytes() == BROKEN_STATES[damage](raw)
            assert any("is corrupt" in message for message in warnings)


# ---- 9. two runs on the same state file ----------------------------------------------------------


BUSY = "another run is using"


@pytest.mark.parametrize("other", ["started_together", "lock_held_by_a_stuck_run"])
def test_runs_sharing_a_state_file_never_interleave(tmp_path, runs, other):
    """Two runs on one state file never fetch at the same time: the second waits for the lock and
    then finds everything fresh, or gives up after 30 s with one clear error line."""
    world = make_demo_world()
    with local_stack(world, tmp_path) as stack:
        if other == "started_together":
            world.faults = FaultPlan(latency_s=0.05)
            slow = {"THREADS_CONCURRENCY": "2"}  # about 3 s of fetching
            first, second = runs.start(stack, **slow), runs.start(stack, **slow)
            results = [runs.finish(first), runs.finish(second)]
            codes = sorted(result.returncode for result in results)
            assert codes in ([0, 0], [0, 1]), [describe(r) for r in results]
            if codes == [0, 1]:
                loser = next(r for r in results if r.returncode == 1)
                assert any(BUSY in message for message in errors(loser.stdout)), loser.stdout
            # The second waited for the first and found everything fresh.
            assert served(world, "insights") == insights_due(world)
            assert_data_tab(stack, expected_rows(world))
            return

        lock_path = stack.state_file.with_name(stack.state_file.name + ".lock")
        with open(lock_path, "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            busy = runs.finish(runs.start(stack), 45)
        assert busy.returncode == 1, describe(busy)
        [message] = errors(busy.stdout)
        assert BUSY in message and str(stack.state_file) in message
        assert stack.data() == [] and not stack.state_file.exists()
        assert world.stats.total == 0  # it waited without touching Threads

        runs.run_ok(stack)
        assert_data_tab(stack, expected_rows(world))


# ---- 10. a spreadsheet near the 10,000,000-cell limit --------------------------------------------


def test_a_sheet_near_the_cell_limit_fails_clearly_and_writes_nothing(tmp_path, runs):
    """So close to 10,000,000 cells that the new rows cannot fit: one clear error line, exit 1,
    not one row written; once cells are freed, the next run writes everything."""
    # 200 posts with long texts: their rows take two ~2 MB write requests, the first one about
    # 140 rows. The cells left allow the data tab 170 rows: enough for the first request, not
    # for all 201 rows. So a write that does not check first would stop half-way.
    world = ThreadsWorld()
    world.add_account("longreads", token="THAA-token-of-longreads")
    text = "Длинный разбор: " + "очень подробный текст про метрики и таблицы. " * 60
    start_at = world.clock() - timedelta(days=30)
    for number in range(200):
        world.add_post(
            "longreads", f"{number} {text}", timestamp=start_at + timedelta(hours=number)
        )
    sheets = SheetsWorld(require_auth=True)  # Google's 10,000,000 cells
    sheets.create_spreadsheet(SID, ("accounts_threads",))  # 1000 x 26 cells
    data_allowance = 170 * len(DATA_HEADER)
    sheets.add_sheet(SID, "Архив", rows=(10_000_000 - 26_000 - data_allowance) // 10, cols=10)
    # The analyst trimmed the data tab to 50 rows to save cells.
    sheets.add_sheet(SID, DATA_SHEET, rows=50, cols=len(DATA_HEADER))
    sheets.set_values(SID, DATA_SHEET, [DATA_HEADER], input_option="RAW")
    with local_stack(world, tmp_path, sheets) as stack:
        result = runs.run(stack)

        assert result.returncode == 1, describe(result)
        assert stack.data() == [DATA_HEADER]  # not one row half-written
        assert not stack.state_file.exists()
        [message] = errors(result.stdout)
        assert "limit" in message and "nothing was written" in message
        assert result.stderr == ""

        # Once the analyst frees cells, the next run writes everything.
        archive = sheets.sheet(SID, "Архив")
        analyst_batch_update(stack, [{"deleteSheet": {"sheetId": archive.sheet_id}}])
        runs.run_ok(stack)
        assert_formatted(stack, assert_data_tab(stack, expected_rows(world)))
