"""Token refresh and account health: TokenKeeper against both simulators on 127.0.0.1 (the real
Sheets sink and Threads client), and the whole command end to end through local_stack."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gspread
import pytest
from e2e_support import log_lines, run_finished
from google.oauth2.service_account import Credentials

import sheets_simulator
import threads_simulator as sim
from accounts import Account, parse_accounts
from collect import AccountOutcome, parse_time, utc_iso
from google_sheets import SHEETS_SCOPES, GoogleSheetsSink, SheetsSession
from http_session import build_session, mount_retries
from local_stack import SPREADSHEET_ID, LocalStack, local_stack, service_account_info
from run_control import RunControl
from sink import ACCOUNTS_SHEET
from threads_api import ThreadsClient
from token_health import LAST_ERROR_MAX_CHARS, TokenKeeper

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = "THAA-alice-original-token-000000000001"
BOB = "THAA-bob-original-token-0000000000002"
DAY = timedelta(days=1)
LIFETIME = timedelta(days=60)


# ---- both simulators behind real HTTP, and a keeper as sync() builds one ------------------------


@pytest.fixture(scope="module")
def key_info() -> dict[str, Any]:
    """One service account key for the module: generating an RSA key takes a while."""
    return service_account_info("http://127.0.0.1:1/token")


@pytest.fixture
def clock() -> sim.ManualClock:
    return sim.ManualClock(NOW)


@pytest.fixture
def world(clock: sim.ManualClock) -> sim.ThreadsWorld:
    """alice's token expires in 3 days, bob's in 50 (both can be refreshed)."""
    world = sim.ThreadsWorld(clock=clock)
    world.add_account("alice", token=ALICE, token_created_at=NOW - LIFETIME + 3 * DAY)
    world.add_account("bob", token=BOB, token_created_at=NOW - LIFETIME + 50 * DAY)
    return world


@pytest.fixture
def threads_url(world: sim.ThreadsWorld) -> Iterator[str]:
    with sim.serve(world) as server:
        yield server.base_url


@pytest.fixture
def sheets() -> sheets_simulator.SheetsWorld:
    sheets = sheets_simulator.SheetsWorld(require_auth=True)
    sheets.create_spreadsheet(SPREADSHEET_ID, (ACCOUNTS_SHEET,))
    return sheets


@pytest.fixture
def sink(sheets: sheets_simulator.SheetsWorld, key_info: dict[str, Any]) -> Iterator[Any]:
    """The real Google Sheets sink, without pauses between retries."""
    with sheets_simulator.serve(sheets) as server:
        info = {**key_info, "token_uri": server.base_url + "/token"}
        credentials = Credentials.from_service_account_info(info, scopes=SHEETS_SCOPES)
        session = SheetsSession(credentials, server.base_url)
        mount_retries(session, pool_size=2, backoff_factor=0)
        yield GoogleSheetsSink(gspread.Client(auth=credentials, session=session), SPREADSHEET_ID)


Run = tuple[TokenKeeper, list[Account]]


@pytest.fixture
def start_run(sink: Any, threads_url: str, clock: sim.ManualClock) -> Callable[..., Run]:
    """Start a run as sync() does: read the accounts, build a keeper on the simulated clock."""

    def start(state: dict[str, Any], refresh_days: float = 7) -> Run:
        grid = sink.read_accounts()
        session = build_session(5.0, pool_size=2, backoff_factor=0)
        client = ThreadsClient(threads_url, session, RunControl(600), 2, ("id",), (0.01,))
        keeper = TokenKeeper(
            sink, grid[0], client, refresh_days, state, clock=lambda: clock().timestamp()
        )
        return keeper, parse_accounts(grid)

    return start


def put_accounts(sheets: sheets_simulator.SheetsWorld, rows: list[list[Any]]) -> None:
    """Type rows into accounts_threads as a user would (formulas and dates are parsed)."""
    sheets.set_values(SPREADSHEET_ID, ACCOUNTS_SHEET, rows, input_option="USER_ENTERED")


def iso(moment: datetime) -> str:
    """A moment as the tool writes it into token_expires_at and last_success_at."""
    return utc_iso(moment.timestamp())


def accounts_table(sheets: sheets_simulator.SheetsWorld) -> dict[str, dict[str, Any]]:
    """accounts_threads as {account_name: {column: value}}."""
    values = sheets.values(SPREADSHEET_ID, ACCOUNTS_SHEET)
    header = values[0]
    return {
        row[0]: dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        for row in values[1:]
        if row and row[0]
    }


def cells(sheets: sheets_simulator.SheetsWorld) -> dict[tuple[int, int], Any]:
    """Every stored cell of accounts_threads (value, formula, format) by 0-based (row, column)."""
    sheet = sheets.sheet(SPREADSHEET_ID, ACCOUNTS_SHEET)
    return {key: cell for key, cell in sheet.cells.items() if cell.kind != "empty"}


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The keeper's log messages at one level (urllib3 logs its own retries)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "token_health" and record.levelno == level
    ]


@pytest.fixture(autouse=True)
def _capture_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


# ---- when a token is refreshed ------------------------------------------------------------------


@pytest.mark.parametrize(("days_left", "refreshed"), [(6.9, True), (7.1, False)])
def test_token_is_refreshed_inside_the_window_and_not_outside_it(
    world, sheets, start_run, clock, days_left, refreshed
):
    expires = NOW + timedelta(days=days_left)
    world.accounts["alice"].token_expires_at = expires
    world.tokens[ALICE].expires_at = expires
    put_accounts(
        sheets,
        [["account_name", "access_token", "token_expires_at"], ["alice", ALICE, iso(expires)]],
    )
    keeper, accounts = start_run({})
    sheets.reset_stats()
    keeper.refresh_due(accounts)
    row = accounts_table(sheets)["alice"]
    if refreshed:
        new_token = world.accounts["alice"].token
        assert new_token != ALICE
        assert accounts[0].token == new_token  # used from now on
        assert row["access_token"] == new_token
        assert row["token_expires_at"] == iso(NOW + LIFETIME)
    else:
        assert world.stats.by_kind["refresh"] == 0
        assert sheets.stats.writes == 0
        assert row["access_token"] == ALICE and accounts[0].token == ALICE


def test_expiry_column_is_found_whatever_its_case_and_spaces(world, sheets, start_run):
    put_accounts(
        sheets,
        [["Account_Name", "Access_Token", " Token_Expires_At "], ["bob", BOB, iso(NOW + 50 * DAY)]],
    )
    keeper, accounts = start_run({})
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 0
    keeper.record(accounts, {"bob": AccountOutcome()})
    header = sheets.values(SPREADSHEET_ID, ACCOUNTS_SHEET)[0]
    assert header == [
        "Account_Name",
        "Access_Token",
        " Token_Expires_At ",
        "last_success_at",
        "last_error",
    ]


def test_refresh_window_follows_the_setting(world, sheets, start_run):
    put_accounts(
        sheets,
        [
            ["account_name", "access_token", "token_expires_at"],
            ["bob", BOB, iso(NOW + 50 * DAY)],
        ],
    )
    keeper, accounts = start_run({}, refresh_days=51)
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 1
    assert accounts_table(sheets)["bob"]["token_expires_at"] == iso(NOW + LIFETIME)


def test_unknown_expiry_is_refreshed_and_fills_in_token_expires_at(world, sheets, start_run):
    put_accounts(sheets, [["account_name", "access_token"], ["bob", BOB]])
    keeper, accounts = start_run({})
    keeper.refresh_due(accounts)
    values = sheets.values(SPREADSHEET_ID, ACCOUNTS_SHEET)
    assert values[0] == [
        "account_name",
        "access_token",
        "token_expires_at",
        "last_success_at",
        "last_error",
    ]
    assert values[1] == ["bob", world.accounts["bob"].token, iso(NOW + LIFETIME)]
    assert parse_time(values[1][2]) == (NOW + LIFETIME).timestamp()


def test_token_under_24_hours_is_info_not_written_and_not_retried_within_6_hours(
    world, sheets, start_run, clock, caplog
):
    world.add_account(
        "carol",
        token="THAA-carol-pasted-two-hours-ago-03",
        token_created_at=NOW - timedelta(hours=2),
    )
    put_accounts(
        sheets, [["account_name", "access_token"], ["carol", "THAA-carol-pasted-two-hours-ago-03"]]
    )
    state: dict[str, Any] = {}
    keeper, accounts = start_run(state)
    sheets.reset_stats()
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 1
    assert any(
        "carol" in message and "24 hours" in message for message in messages(caplog, logging.INFO)
    )
    assert not messages(caplog, logging.WARNING) and not messages(caplog, logging.ERROR)
    assert sheets.stats.writes == 0

    state = json.loads(json.dumps(state))  # as the state file keeps it between runs
    clock.advance(hours=5, minutes=59)
    keeper, accounts = start_run(state)
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 1  # not asked again yet

    clock.advance(hours=18)  # the token is now 25 h old
    keeper, accounts = start_run(state)
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 2
    row = accounts_table(sheets)["carol"]
    assert row["access_token"] == world.accounts["carol"].token
    assert row["token_expires_at"] == iso(clock() + LIFETIME)


# ---- what the write-back touches ----------------------------------------------------------------


def test_write_back_and_health_keep_every_other_cell_including_analyst_columns_and_formulas(
    world, sheets, start_run
):
    put_accounts(
        sheets,
        [
            ["account_name", "notes", "access_token", "token_expires_at", "score"],
            ["alice", '=CONCAT("a", "b")', ALICE, iso(NOW + 3 * DAY), 0.5, "", "no header"],
            ["bob", "'0012", BOB, iso(NOW + 50 * DAY), "=E2*2", "2026-01-15"],
            ["", "a note under the table", "", "", "=SUM(E2:E3)"],
        ],
    )
    before = cells(sheets)
    keeper, accounts = start_run({})
    keeper.refresh_due(accounts)
    keeper.record(accounts, {"alice": AccountOutcome(), "bob": AccountOutcome()})
    after = cells(sheets)

    changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
    # alice's token and expiry; the two new columns go right of the unlabelled data in G.
    assert changed == {(1, 2), (1, 3), (0, 7), (0, 8), (1, 7), (2, 7)}
    assert after[(1, 2)].value == world.accounts["alice"].token
    assert after[(1, 3)].value == iso(NOW + LIFETIME)
    assert [after[(0, 7)].value, after[(0, 8)].value] == ["last_success_at", "last_error"]
    assert after[(1, 7)].value == after[(2, 7)].value == iso(NOW)
    assert after[(1, 1)] == before[(1, 1)] and after[(1, 1)].kind == "formula"
    assert after[(2, 4)].kind == "formula" and after[(3, 4)].kind == "formula"


def test_health_columns_are_added_once(sheets, start_run):
    put_accounts(sheets, [["account_name", "access_token"], ["bob", BOB]])
    for _ in range(2):
        keeper, accounts = start_run({})
        keeper.record(accounts, {"bob": AccountOutcome()})
    header = sheets.values(SPREADSHEET_ID, ACCOUNTS_SHEET)[0]
    assert header == [
        "account_name",
        "access_token",
        "token_expires_at",
        "last_success_at",
        "last_error",
    ]


def test_health_goes_to_the_account_row_after_rows_moved_during_the_run(sheets, start_run):
    header = ["account_name", "access_token", "token_expires_at", "last_success_at", "last_error"]
    put_accounts(sheets, [header, ["alice", ALICE], ["bob", BOB]])
    keeper, accounts = start_run({})
    # An analyst adds an account at the top while the posts are being fetched.
    put_accounts(
        sheets, [header, ["zoe", "THAA-zoe-token-00000000004"], ["alice", ALICE], ["bob", BOB]]
    )
    keeper.record(accounts, {"alice": AccountOutcome(), "bob": AccountOutcome(error="boom")})
    table = accounts_table(sheets)
    assert table["zoe"]["last_success_at"] == "" and table["zoe"]["last_error"] == ""
    assert table["alice"]["last_success_at"] == iso(NOW)
    assert table["bob"]["last_error"] == "boom"


def test_a_token_pasted_during_the_run_is_not_overwritten(world, sheets, start_run, caplog):
    put_accounts(
        sheets,
        [
            ["account_name", "access_token", "token_expires_at"],
            ["alice", ALICE, iso(NOW + 3 * DAY)],
        ],
    )
    keeper, accounts = start_run({})
    pasted = "THAA-alice-pasted-meanwhile-00005"
    sheets.set_values(SPREADSHEET_ID, ACCOUNTS_SHEET, [[pasted]], start="B2", input_option="RAW")
    keeper.refresh_due(accounts)
    assert accounts_table(sheets)["alice"]["access_token"] == pasted
    assert accounts[0].token == ALICE
    assert any("alice" in message for message in messages(caplog, logging.ERROR))


# ---- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", [[500] * 6, ["drop"] * 6], ids=["500", "network"])
def test_refresh_failure_is_a_warning_naming_the_account_and_the_old_token_is_used(
    world, sheets, start_run, caplog, answers
):
    put_accounts(
        sheets,
        [
            ["account_name", "access_token", "token_expires_at"],
            ["alice", ALICE, iso(NOW + 3 * DAY)],
        ],
    )
    world.script(r"refresh_access_token", answers)
    keeper, accounts = start_run({})
    sheets.reset_stats()
    keeper.refresh_due(accounts)
    assert world.stats.by_kind["refresh"] == 6  # retried before giving up
    warnings = messages(caplog, logging.WARNING)
    assert len(warnings) == 1 and "alice" in warnings[0] and ALICE not in warnings[0]
    assert accounts[0].token == ALICE
    assert sheets.stats.writes == 0


@pytest.mark.parametrize("answers", [[403], [500] * 6], ids=["403", "500"])
def test_write_back_failure_is_an_error_naming_the_account_and_the_old_token_is_used(
    world, sheets, start_run, caplog, answers
):
    put_accounts(
        sheets,
        [
            ["account_name", "access_token", "token_expires_at"],
            ["alice", ALICE, iso(NOW + 3 * DAY)],
        ],
    )
    sheets.script("POST", r"values:batchUpdate", answers)
    keeper, accounts = start_run({})
    keeper.refresh_due(accounts)
    errors = messages(caplog, logging.ERROR)
    assert len(errors) == 1 and "alice" in errors[0] and "not saved" in errors[0]
    assert accounts[0].token == ALICE  # still valid: it works until its expiry
    assert accounts_table(sheets)["alice"]["access_token"] == ALICE
    health = keeper.record(accounts, {"alice": AccountOutcome()})
    assert health.expiring == ["alice"]  # the sheet still holds the expiring token


# ---- health -------------------------------------------------------------------------------------


def test_record_sets_last_error_then_a_later_success_clears_it(sheets, start_run, clock):
    put_accounts(sheets, [["account_name", "access_token"], ["alice", ALICE], ["bob", BOB]])
    failure = "list_posts: Error validating access token (HTTP 400, code 190/463)"
    keeper, accounts = start_run({})
    keeper.record(accounts, {"alice": AccountOutcome(error=failure), "bob": AccountOutcome()})
    table = accounts_table(sheets)
    assert table["alice"]["last_error"] == failure and table["alice"]["last_success_at"] == ""
    assert table["bob"]["last_error"] == "" and table["bob"]["last_success_at"] == iso(NOW)

    clock.advance(minutes=10)
    keeper, accounts = start_run({})
    keeper.record(accounts, {"alice": AccountOutcome(), "bob": AccountOutcome()})
    table = accounts_table(sheets)
    assert table["alice"]["last_error"] == ""
    assert sheets.cell(SPREADSHEET_ID, ACCOUNTS_SHEET, "E2") is None  # cleared, not a space
    assert table["alice"]["last_success_at"] == iso(NOW + timedelta(minutes=10))


def test_last_error_is_short_and_never_holds_a_token(sheets, start_run):
    put_accounts(sheets, [["account_name", "access_token"], ["alice", ALICE]])
    keeper, accounts = start_run({})
    failure = f"insights: =HYPERLINK() failed for access_token={ALICE} and {ALICE} " + "x" * 500
    keeper.record(accounts, {"alice": AccountOutcome(error=failure)})
    stored = sheets.cell(SPREADSHEET_ID, ACCOUNTS_SHEET, "E2")
    assert stored.kind == "string"  # RAW: never a formula
    assert ALICE not in stored.value and "***" in stored.value
    assert len(stored.value) == LAST_ERROR_MAX_CHARS


def test_health_lists_ok_failing_and_expiring_after_the_refreshes(world, sheets, start_run):
    world.add_account(
        "carol", token="THAA-carol-token-00000000006", token_created_at=NOW - 58 * DAY
    )
    put_accounts(
        sheets,
        [
            ["account_name", "access_token", "token_expires_at"],
            ["alice", ALICE, iso(NOW + 3 * DAY)],  # refresh refused: still expiring
            ["bob", BOB, iso(NOW + 50 * DAY)],  # not due
            ["carol", "THAA-carol-token-00000000006", iso(NOW + 2 * DAY)],  # refreshed
        ],
    )
    # Refreshes go in sheet order: alice's meets the scripted refusal, carol's succeeds.
    world.script(r"refresh_access_token", [{"status": 400, "code": 100, "message": "nope"}])
    keeper, accounts = start_run({})
    keeper.refresh_due(accounts)
    health = keeper.record(
        accounts,
        {"alice": AccountOutcome(), "bob": AccountOutcome(error="x"), "carol": AccountOutcome()},
    )
    assert health.as_context() == {
        "health": {"ok": ["alice", "carol"], "failing": ["bob"], "expiring": ["alice"]}
    }


# ---- end to end: the command against both simulators ------------------------------------------


def assert_no_token_outside_access_token(stack: LocalStack, *outputs: str) -> None:
    """No token the simulator ever issued (old or refreshed) in the outputs, the state file,
    or any cell but the access_token column of accounts_threads."""
    tokens = list(stack.threads.tokens)
    texts = [*outputs, stack.state_file.read_text(encoding="utf-8")]
    for title in [sheet.title for sheet in stack.sheets.spreadsheets[SPREADSHEET_ID].sheets]:
        values = stack.sheets.values(SPREADSHEET_ID, title, "FORMULA")
        for row_number, row in enumerate(values):
            for column, value in enumerate(row):
                is_token_cell = title == ACCOUNTS_SHEET and values[0][column] == "access_token"
                if not (is_token_cell and row_number > 0):
                    texts.append(str(value))
    for text in texts:
        for token in tokens:
            assert token not in text


def test_expired_token_sets_last_error_and_exit_1_and_a_new_token_clears_it(tmp_path: Path):
    world = sim.ThreadsWorld()
    world.add_account("alice", token=ALICE)  # 7 days old, expiry not in the sheet: refreshed
    world.add_account("bob", token=BOB)
    world.add_post("alice", text="hello")
    world.add_post("bob", text="hi")
    with local_stack(world, tmp_path) as stack:
        stack.set_accounts({"notes": ["keep me", "and me"]})
        # The user's next long-lived token, issued before the old one expires.
        answer = world.handle(
            "GET",
            f"{sim.DEFAULT_BASE_URL}/refresh_access_token?grant_type=th_refresh_token"
            f"&access_token={ALICE}",
        )
        next_token = answer.json()["access_token"]
        world.expire_token("alice", token=ALICE)

        first = stack.run_sync()
        assert first.returncode == 1, first.stdout[-2000:]
        table = accounts_table(stack.sheets)
        assert "code 190" in table["alice"]["last_error"]
        assert table["alice"]["last_success_at"] == "" and table["alice"]["access_token"] == ALICE
        assert table["bob"]["last_error"] == "" and table["bob"]["last_success_at"]
        assert table["bob"]["access_token"] == world.accounts["bob"].token != BOB
        refreshed_expiry = world.clock() + LIFETIME - timedelta(minutes=5)
        assert parse_time(table["bob"]["token_expires_at"]) > refreshed_expiry.timestamp()
        assert [row["notes"] for row in table.values()] == ["keep me", "and me"]
        health = run_finished(first.stdout)["health"]
        assert health == {"ok": ["bob"], "failing": ["alice"], "expiring": []}
        # The refused refresh is left to the sync to report: one error, no warning.
        alice_lines = [
            line for line in log_lines(first.stdout) if line["context"].get("account") == "alice"
        ]
        assert [line["level"] for line in alice_lines if line["level"] != "info"] == ["error"]

        # What the README says: paste the new token into access_token, clear token_expires_at.
        assert list(table["alice"])[1:4] == ["access_token", "notes", "token_expires_at"]
        stack.sheets.set_values(
            SPREADSHEET_ID, ACCOUNTS_SHEET, [[next_token, "keep me", ""]], "B2", "RAW"
        )
        second = stack.run_sync()
        assert second.returncode == 0, second.stdout[-2000:]
        table = accounts_table(stack.sheets)
        assert table["alice"]["last_error"] == ""
        assert parse_time(table["alice"]["last_success_at"]) is not None
        assert run_finished(second.stdout)["health"]["ok"] == ["alice", "bob"]
        assert_no_token_outside_access_token(
            stack, first.stdout, first.stderr, second.stdout, second.stderr
        )


def test_run_finished_lists_accounts_by_health_within_the_configured_window(tmp_path: Path):
    world = sim.ThreadsWorld()
    now = world.clock()
    world.add_account("alice", token=ALICE, token_created_at=now - 10 * DAY)
    world.add_account("bob", token=BOB, token_created_at=now - 10 * DAY)
    world.add_account(
        "carol", token="THAA-carol-token-00000000006", token_created_at=now - 52 * DAY
    )
    for name in world.accounts:
        world.add_post(name, text=f"{name} says hi")
    world.revoke_token("bob")
    # carol's token is inside the 10-day window; her refresh is refused once.
    world.script(r"refresh_access_token", [{"status": 400, "code": 100, "message": "nope"}])
    with local_stack(world, tmp_path) as stack:
        expiries = [iso(account.token_expires_at) for account in world.accounts.values()]
        stack.set_accounts({"token_expires_at": expiries})
        done = stack.run_sync(THREADS_TOKEN_REFRESH_DAYS="10")
        assert done.returncode == 1, done.stdout[-2000:]
        assert run_finished(done.stdout)["health"] == {
            "ok": ["alice", "carol"],
            "failing": ["bob"],
            "expiring": ["carol"],
        }
        warnings = [line for line in log_lines(done.stdout) if line["level"] == "warning"]
        assert [line["context"]["account"] for line in warnings] == ["carol"]
        assert "carol" in warnings[0]["msg"]
        assert world.stats.by_kind["refresh"] == 1  # alice and bob are far from expiry
        table = accounts_table(stack.sheets)
        assert table["carol"]["access_token"] == "THAA-carol-token-00000000006"
        assert "code 190" in table["bob"]["last_error"]
        assert_no_token_outside_access_token(stack, done.stdout, done.stderr)
