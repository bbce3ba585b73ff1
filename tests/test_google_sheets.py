"""The Google Sheets sink against the stateful Sheets simulator (USER_ENTERED applied as Sheets
does): exact ids and texts, analysts' cells untouched, formatting, limits and errors.

Run only the row-update tests with: pytest tests/test_google_sheets.py -k update_rows
"""

from __future__ import annotations

import re

import gspread
import pandas as pd
import pytest
import requests
import responses

import sheets_simulator as sim
import sink
from google_sheets import GoogleSheetsSink, open_client
from local_stack import service_account_info
from merge import merge_posts, owned_columns
from sink import ACCOUNTS_SHEET, DATA_SHEET, SinkError
from threads_simulator import HOSTILE_TEXTS

SHEET_ID = "spreadsheet-1"
OWNED = owned_columns(["id", "text", "media_type"])
HOSTILE = [*HOSTILE_TEXTS, "#N/A", "2024-01-05", "Привет 👋\nвторая строка"]


@pytest.fixture
def world():
    world = sim.SheetsWorld()
    world.create_spreadsheet(SHEET_ID, (ACCOUNTS_SHEET,))
    return world


@pytest.fixture
def sheets(world):
    """A sink whose gspread client talks to the simulator through `responses`."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sim.register_with_responses(mock, world)
        client = gspread.Client(auth=None, session=requests.Session())
        yield GoogleSheetsSink(client, SHEET_ID)


def write(sheets: GoogleSheetsSink, *records: dict) -> pd.DataFrame:
    """Merge records into what the sheet holds now and write it, as a run does."""
    fresh = pd.DataFrame.from_records(records).astype(object)
    merged = merge_posts(sheets.read_posts(), fresh, OWNED)
    sheets.write_posts(merged.frame, OWNED, merged.write_ranges, merged.header_changed)
    return merged.frame


def written_rows(world) -> set[int]:
    """Sheet rows covered by the values.update requests the simulator received."""
    rows: set[int] = set()
    for method, path, *_ in world.stats.log:
        if method == "PUT":
            first, last = re.findall(r"[A-Z]+(\d+)", path.split("!")[-1])
            rows.update(range(int(first), int(last) + 1))
    return rows


def data_cell(world, ref: str):
    return world.cell(SHEET_ID, DATA_SHEET, ref)


def test_update_rows_keep_18_digit_ids_exact_as_text(world, sheets):
    ids = ["178901234567890123", "17890123456789012", "100000000000000001"]
    write(sheets, *[{"account_name": "a", "post_id": post_id} for post_id in ids])
    assert [row[1] for row in world.values(SHEET_ID, DATA_SHEET)[1:]] == ids
    assert all(data_cell(world, f"B{row}").kind == "string" for row in (2, 3, 4))


def test_update_rows_keep_formula_like_and_na_like_texts_as_text(world, sheets):
    records = [
        {"account_name": "a", "post_id": str(1000 + index), "text": text}
        for index, text in enumerate(HOSTILE)
    ]
    write(sheets, *records)
    rows = world.values(SHEET_ID, DATA_SHEET, "FORMULA")[1:]
    text_column = OWNED.index("text")
    assert [row[text_column] for row in rows] == HOSTILE
    for row in range(2, 2 + len(HOSTILE)):
        assert data_cell(world, f"C{row}").kind == "string"
    # And a second run reads them back exactly, so nothing changes and no duplicate appears.
    again = merge_posts(sheets.read_posts(), pd.DataFrame.from_records(records), OWNED)
    assert (again.new_rows, again.updated_rows) == (0, 0)


def test_update_rows_write_metrics_as_numbers_and_missing_metrics_as_empty(world, sheets):
    write(sheets, {"account_name": "a", "post_id": "1", "likes": 12, "views": 3400, "shares": None})
    header = world.values(SHEET_ID, DATA_SHEET)[0]
    likes = world.cell(SHEET_ID, DATA_SHEET, f"{sim.col_letters(header.index('likes'))}2")
    assert (likes.kind, likes.value) == ("number", 12)
    assert world.cell(SHEET_ID, DATA_SHEET, f"{sim.col_letters(header.index('shares'))}2") is None


def test_update_rows_never_touch_analyst_columns_values_or_formulas(world, sheets):
    world.add_sheet(SHEET_ID, DATA_SHEET)
    world.set_values(
        SHEET_ID,
        DATA_SHEET,
        [
            ["note", "post_id", "score", "account_name", "likes"],
            ["typed by hand", "111", "=C3*2", "a", 1],
            ["", "222", "5", "a", 2],
        ],
    )
    write(
        sheets,
        {"account_name": "a", "post_id": "111", "likes": 10, "text": "hi"},
        {"account_name": "a", "post_id": "333", "likes": 30},
    )
    # An analyst types a note while the tool works: the tool's write never covers column A or C.
    written_ranges = [path for method, path, kind, _ in world.stats.log if method == "PUT"]
    assert written_ranges and all(
        "A" not in r.split("!")[-1] and "C" not in r.split("!")[-1] for r in written_ranges
    )
    assert data_cell(world, "A2").value == "typed by hand"
    assert (data_cell(world, "C2").kind, data_cell(world, "C2").value) == ("formula", "=C3*2")
    assert data_cell(world, "C3").value == 5
    assert world.values(SHEET_ID, DATA_SHEET)[0][:5] == [
        "note",
        "post_id",
        "score",
        "account_name",
        "likes",
    ]
    assert [row[1] for row in world.values(SHEET_ID, DATA_SHEET)[1:]] == ["111", "222", "333"]
    assert data_cell(world, "E2").value == 10
    assert data_cell(world, "E4").value == 30


def test_update_rows_keep_blank_middle_rows_in_place(world, sheets):
    world.add_sheet(SHEET_ID, DATA_SHEET)
    world.set_values(
        SHEET_ID,
        DATA_SHEET,
        [["account_name", "post_id", "note"], ["a", "1", "n1"], ["", "", ""], ["a", "2", "n2"]],
    )
    write(sheets, {"account_name": "a", "post_id": "2", "likes": 7})
    values = world.values(SHEET_ID, DATA_SHEET)
    assert values[2] == []
    assert values[3][:3] == ["a", "2", "n2"]
    assert len(values) == 4


def test_update_rows_never_touch_rows_without_a_post_such_as_a_totals_row(world, sheets):
    world.add_sheet(SHEET_ID, DATA_SHEET)
    world.set_values(
        SHEET_ID,
        DATA_SHEET,
        [
            ["account_name", "post_id", "likes", "note"],
            ["a", "1", 5, ""],
            ["", "", "=SUM(C2:C2)", "totals"],
            ["a", "2", 7, ""],
        ],
    )
    write(
        sheets,
        {"account_name": "a", "post_id": "1", "likes": 6},
        {"account_name": "a", "post_id": "2", "likes": 8},
        {"account_name": "a", "post_id": "3", "likes": 9},
    )
    totals = data_cell(world, "C3")
    assert (totals.kind, totals.value) == ("formula", "=SUM(C2:C2)")
    assert [data_cell(world, f"C{row}").value for row in (2, 4, 5)] == [6, 8, 9]
    assert 3 not in written_rows(world)


def test_update_rows_start_at_the_first_changed_row(world, sheets):
    write(sheets, *[{"account_name": "a", "post_id": str(n), "likes": n} for n in range(1, 6)])
    world.reset_stats()
    write(sheets, {"account_name": "a", "post_id": "4", "likes": 40})
    assert written_rows(world) == {5, 6}


def test_update_rows_add_new_owned_columns_to_the_right(world, sheets):
    world.add_sheet(SHEET_ID, DATA_SHEET)
    world.set_values(SHEET_ID, DATA_SHEET, [["post_id", "account_name", "mine"], ["1", "a", "x"]])
    write(sheets, {"account_name": "a", "post_id": "1", "text": "t"})
    header = world.values(SHEET_ID, DATA_SHEET)[0]
    assert header[:3] == ["post_id", "account_name", "mine"]
    assert header[3:] == [column for column in OWNED if column not in ("post_id", "account_name")]


def test_update_rows_split_a_large_write_into_chunks(world, sheets, monkeypatch):
    monkeypatch.setattr(sink, "WRITE_CHUNK_BYTES", 20_000)
    records = [
        {"account_name": "a", "post_id": str(10**17 + n), "text": "x" * 500} for n in range(200)
    ]
    write(sheets, *records)
    puts = [entry for entry in world.stats.log if entry[0] == "PUT"]
    assert len(puts) > 3
    assert max(size for *_, size in puts) < 40_000
    assert len(world.values(SHEET_ID, DATA_SHEET)) == 201


def test_update_rows_request_count_does_not_grow_with_posts(world, sheets):
    def requests_for(count: int, account: str) -> int:
        before = world.stats.requests
        write(sheets, *[{"account_name": account, "post_id": str(n)} for n in range(count)])
        return world.stats.requests - before

    requests_for(1, "warmup")  # creates the tab
    assert requests_for(5, "a") == requests_for(500, "b")


def test_formatting_turns_wrapping_off_and_rows_to_21px_keeping_other_formats(world, sheets):
    world.add_sheet(SHEET_ID, DATA_SHEET)
    world.set_values(SHEET_ID, DATA_SHEET, [["account_name", "post_id"], ["a", "1"]])
    sheet_id = world.sheet(SHEET_ID, DATA_SHEET).sheet_id
    world.handle(
        "POST",
        f"https://sheets.googleapis.com/v4/spreadsheets/{SHEET_ID}:batchUpdate",
        {},
        b'{"requests": [{"repeatCell": {"range": {"sheetId": %d, "startRowIndex": 1,'
        b' "endRowIndex": 2, "startColumnIndex": 0, "endColumnIndex": 1}, "cell": {'
        b'"userEnteredFormat": {"backgroundColor": {"red": 1}}}, "fields":'
        b' "userEnteredFormat.backgroundColor"}}]}' % sheet_id,
    )
    write(sheets, {"account_name": "a", "post_id": "1", "text": "line one\nline two"})
    fmt = world.cell_format(SHEET_ID, DATA_SHEET, "A2")
    assert fmt["wrapStrategy"] == "CLIP"
    assert fmt["backgroundColor"] == {"red": 1}
    heights = world.row_heights(SHEET_ID, DATA_SHEET)
    grid_rows = world.sheet(SHEET_ID, DATA_SHEET).row_count
    assert len(heights) == grid_rows and set(heights.values()) == {21}


def test_data_sheet_is_created_when_missing(world, sheets):
    write(sheets, {"account_name": "a", "post_id": "1"})
    assert world.values(SHEET_ID, DATA_SHEET)[1][:2] == ["a", "1"]


def test_a_write_over_the_cell_limit_fails_before_anything_is_written(sheets):
    world = sim.SheetsWorld(cell_limit=60_000)
    world.create_spreadsheet(SHEET_ID, (ACCOUNTS_SHEET,))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sim.register_with_responses(mock, world)
        small = GoogleSheetsSink(gspread.Client(auth=None, session=requests.Session()), SHEET_ID)
        records = [{"account_name": "a", "post_id": str(n)} for n in range(3000)]
        with pytest.raises(SinkError, match="over Google's limit of 10,000,000|cells"):
            write(small, *records)
    assert world.values(SHEET_ID, DATA_SHEET) == []


def test_missing_accounts_sheet_is_a_clear_error(world, sheets):
    world.create_spreadsheet(SHEET_ID, ("Sheet1",))
    with pytest.raises(SinkError, match="accounts_threads' not found"):
        sheets.read_accounts()


def test_permission_denied_says_to_share_the_spreadsheet(world):
    world.script("GET", r"/v4/spreadsheets/", [(403, {})])
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        sim.register_with_responses(mock, world)
        client = gspread.Client(auth=None, session=requests.Session())
        denied = GoogleSheetsSink(client, SHEET_ID, "bot@project.iam.gserviceaccount.com")
        with pytest.raises(SinkError) as raised:
            denied.read_accounts()
    assert "share the spreadsheet with bot@project.iam.gserviceaccount.com" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_sheets_429_on_the_first_write_is_retried_over_real_http(tmp_path):
    world = sim.SheetsWorld(require_auth=True)
    world.create_spreadsheet(SHEET_ID, (ACCOUNTS_SHEET,))
    world.script("PUT", r"/values/", [(429, {"Retry-After": "0"})])
    with sim.serve(world) as server:
        key = service_account_info(server.base_url + "/token")
        client = open_client(key, server.base_url)
        write(GoogleSheetsSink(client, SHEET_ID), {"account_name": "a", "post_id": "9"})
    assert world.values(SHEET_ID, DATA_SHEET)[1][:2] == ["a", "9"]
    puts = [path for method, path, *_ in world.stats.log if method == "PUT"]
    assert len(puts) == 2 and puts[0] == puts[1]


def test_update_rows_grow_the_grid_with_headroom_so_new_posts_need_no_resize(world, sheets):
    write(sheets, *[{"account_name": "a", "post_id": str(n)} for n in range(1100)])
    assert world.sheet(SHEET_ID, DATA_SHEET).row_count == 2000
    world.reset_stats()
    write(sheets, {"account_name": "a", "post_id": "new-1"}, {"account_name": "a", "post_id": "n2"})
    batch_updates = [entry for entry in world.stats.log if entry[2] == "batch_update"]
    assert len(batch_updates) == 1  # the formatting; no resize
    assert len(world.values(SHEET_ID, DATA_SHEET)) == 1103
