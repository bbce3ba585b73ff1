"""Tests for sheets_simulator: Sheets behaviour through gspread, responses and a real socket."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import gspread
import pandas as pd
import pytest
import requests
import responses
from gspread_dataframe import set_with_dataframe

from local_stack import service_account_info
from sheets_simulator import (
    DropConnection,
    SheetsWorld,
    register_with_responses,
    serve,
)

SID = "sheet-key-1"
API = "https://sheets.googleapis.com/v4/spreadsheets"
LONG_ID = "178900123456789012"  # 18 digits: a Threads post id


@pytest.fixture
def world() -> SheetsWorld:
    world = SheetsWorld()
    world.create_spreadsheet(SID, ("Data",))
    return world


@pytest.fixture
def rsps(world: SheetsWorld) -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_with_responses(mock, world)
        yield mock


@pytest.fixture
def gc(rsps: responses.RequestsMock) -> gspread.Client:
    # With a session given, gspread's HTTPClient ignores auth: no credentials needed.
    return gspread.Client(auth=None, session=requests.Session())


def call(world: SheetsWorld, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    answer = world.handle(method, f"{API}/{SID}{path}", {}, raw)
    return answer.status, answer.json()


def batch(world: SheetsWorld, *requests_: dict[str, Any]) -> tuple[int, Any]:
    return call(world, "POST", ":batchUpdate", {"requests": list(requests_)})


def dimension(kind: str, start: int, end: int, **extra: Any) -> dict[str, Any]:
    span = {"sheetId": 0, "dimension": "ROWS", "startIndex": start, "endIndex": end}
    return {kind: {"range": span, **extra}}


def resize(sheet_id: int, rows: int | None = None, cols: int | None = None) -> dict[str, Any]:
    """What gspread's Worksheet.resize sends."""
    grid = {k: v for k, v in (("rowCount", rows), ("columnCount", cols)) if v is not None}
    fields = ",".join(f"gridProperties/{name}" for name in grid)
    props = {"sheetId": sheet_id, "gridProperties": grid}
    return {"updateSheetProperties": {"properties": props, "fields": fields}}


def repeat_cell(sheet_id: int, fmt: dict[str, Any], fields: str) -> dict[str, Any]:
    return {
        "repeatCell": {
            "range": {"sheetId": sheet_id},
            "cell": {"userEnteredFormat": fmt},
            "fields": fields,
        }
    }


# ------------------------------------------------------------------ through gspread


def test_gspread_client_opens_adds_resizes_updates_and_reads(gc: gspread.Client) -> None:
    spreadsheet = gc.open_by_key(SID)
    data = spreadsheet.worksheet("Data")
    assert (data.id, data.row_count, data.col_count) == (0, 1000, 26)

    posts = spreadsheet.add_worksheet("Posts", rows=5, cols=3)
    posts.resize(rows=20, cols=4)
    rows = [["id", "likes"], [LONG_ID, "7"], ["'0012", "TRUE"]]
    posts.update(rows, "A1", value_input_option="USER_ENTERED")  # gspread's default is RAW

    reopened = gc.open_by_key(SID).worksheet("Posts")
    assert (reopened.row_count, reopened.col_count) == (20, 4)
    assert reopened.get_all_values() == [
        ["id", "likes"],
        ["1.78900123456789E+17", "7"],
        ["0012", "TRUE"],
    ]


def test_set_with_dataframe_full_escaping_keeps_every_string_as_text(
    gc: gspread.Client, world: SheetsWorld
) -> None:
    frame = pd.DataFrame(
        {
            "id": [LONG_ID],
            "formula": ['=IMPORTXML("http://x", "//a")'],
            "na": ["NA"],
            "flag": ["TRUE"],
            "zip": ["0012"],
            "sci": ["1e5"],
            "likes": [42],
        }
    )
    worksheet = gc.open_by_key(SID).worksheet("Data")
    world.reset_stats()

    set_with_dataframe(worksheet, frame, string_escaping="full")

    cells = [world.cell(SID, "Data", f"{col}2") for col in "ABCDEFG"]
    assert [(c.kind, c.value) for c in cells if c] == [
        ("string", LONG_ID),
        ("string", '=IMPORTXML("http://x", "//a")'),
        ("string", "NA"),
        ("string", "TRUE"),
        ("string", "0012"),
        ("string", "1e5"),
        ("number", 42.0),
    ]
    assert world.values(SID, "Data")[0] == ["id", "formula", "na", "flag", "zip", "sci", "likes"]
    # gspread-dataframe first resizes (one batchUpdate), then sends every cell in one PUT.
    assert [entry[2] for entry in world.stats.log] == ["batch_update", "values_update"]


def test_set_with_dataframe_default_escaping_lets_sheets_reinterpret_strings(
    gc: gspread.Client, world: SheetsWorld
) -> None:
    frame = pd.DataFrame({"id": [LONG_ID], "f": ["=A1"], "flag": ["TRUE"], "zip": ["0012"]})

    set_with_dataframe(gc.open_by_key(SID).worksheet("Data"), frame)

    assert world.cell(SID, "Data", "A2").value == 178900123456789000.0
    assert world.cell(SID, "Data", "B2").kind == "formula"
    assert world.cell(SID, "Data", "C2").value is True
    assert world.cell(SID, "Data", "D2").value == 12.0


def test_set_with_dataframe_resize_only_grows_the_sheet(
    gc: gspread.Client, world: SheetsWorld
) -> None:
    worksheet = gc.open_by_key(SID).worksheet("Data")
    frame = pd.DataFrame({f"c{i}": [i] * 1500 for i in range(30)})

    set_with_dataframe(worksheet, frame)

    sheet = world.sheet(SID, "Data")
    assert (sheet.row_count, sheet.col_count) == (1501, 30)
    assert world.values(SID, "Data")[1500][29] == 29


# ------------------------------------------------------------------ USER_ENTERED and RAW


@pytest.mark.parametrize(
    ("typed", "kind", "value"),
    [
        ("123", "number", 123.0),
        ("-4.5", "number", -4.5),
        ("1e5", "number", 100000.0),
        ("0012", "number", 12.0),
        ("1,234", "number", 1234.0),
        ("+5", "number", 5.0),
        ("50%", "number", 0.5),
        ("TRUE", "bool", True),
        ("false", "bool", False),
        ("2024-01-05", "number", 45296.0),
        ("1/5/2024", "number", 45296.0),
        ("2024-01-05 10:30:00", "number", 45296.4375),
        ("=SUM(A1:A2)", "formula", "=SUM(A1:A2)"),
        ("NA", "string", "NA"),
        ("N/A", "string", "N/A"),
        ("null", "string", "null"),
        ("#N/A", "string", "#N/A"),
        ("-", "string", "-"),
        ("=", "string", "="),
        ("@abc", "string", "@abc"),
        ("+7 999 123-45-67", "string", "+7 999 123-45-67"),
        ("2023-10-17T05:42:03+0000", "string", "2023-10-17T05:42:03+0000"),
        ("2024-02-30", "string", "2024-02-30"),
    ],
)
def test_user_entered_parses_like_sheets(
    world: SheetsWorld, typed: str, kind: str, value: Any
) -> None:
    world.set_values(SID, "Data", [[typed]])
    cell = world.cell(SID, "Data", "A1")
    assert (cell.kind, cell.value) == (kind, value)


def test_user_entered_rounds_17_digit_number_to_15_significant_digits(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["17890012345678901", 17890012345678901]])

    assert world.values(SID, "Data") == [[17890012345678900, 17890012345678900]]
    assert world.values(SID, "Data", render="FORMATTED_VALUE") == [
        ["1.78900123456789E+16", "1.78900123456789E+16"]
    ]


def test_apostrophe_prefix_stores_text(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["'0012", "''x", "'=A1", f"'{LONG_ID}", "'TRUE"]])

    cells = [world.cell(SID, "Data", ref) for ref in ("A1", "B1", "C1", "D1", "E1")]
    assert {c.kind for c in cells} == {"string"}
    assert [c.value for c in cells] == ["0012", "'x", "=A1", LONG_ID, "TRUE"]


def test_raw_stores_strings_verbatim(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["=x", "123", "'a", True, 7]], input_option="RAW")

    assert world.values(SID, "Data", render="FORMULA") == [["=x", "123", "'a", True, 7]]
    assert world.cell(SID, "Data", "A1").kind == "string"


def test_date_records_a_date_format_and_renders_per_option(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["2024-01-05", "1/5/2024 7:05"]])

    assert world.cell(SID, "Data", "A1").format["numberFormat"]["type"] == "DATE"
    query = "dateTimeRenderOption=FORMATTED_STRING&valueRenderOption=UNFORMATTED_VALUE"
    status, body = call(world, "GET", f"/values/Data!A1:B1?{query}")
    assert status == 200
    assert body["values"] == [["2024-01-05", "1/5/2024 7:05:00"]]
    assert world.values(SID, "Data") == [[45296, 45296 + (7 * 60 + 5) / 1440]]


def test_empty_string_clears_value_keeps_format_and_null_leaves_cell(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["2024-01-05", "keep"]])
    world.set_values(SID, "Data", [["", None]])

    assert world.cell(SID, "Data", "A1") is None
    assert world.cell_format(SID, "Data", "A1")["numberFormat"]["type"] == "DATE"
    assert world.values(SID, "Data") == [["", "keep"]]


def test_rendering_options(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [[1.5, "TRUE", "=IMPORTXML(A1)", "50%", "1,234.5", 3]])

    assert world.values(SID, "Data", render="FORMATTED_VALUE") == [
        ["1.5", "TRUE", "#NAME?", "50%", "1,234.50", "3"]
    ]
    assert world.values(SID, "Data") == [[1.5, True, "#NAME?", 0.5, 1234.5, 3]]
    assert world.values(SID, "Data", render="FORMULA") == [
        [1.5, True, "=IMPORTXML(A1)", 0.5, 1234.5, 3]
    ]


# ------------------------------------------------------------------ reading ranges


def test_trailing_empty_cells_are_trimmed(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["a", "", "", ""], ["b", "c", "", ""]])
    world.set_values(SID, "Data", [[""]], start="A5")

    status, body = call(world, "GET", "/values/Data!A1:Z100")
    assert (status, body["values"]) == (200, [["a"], ["b", "c"]])
    assert body["range"] == "Data!A1:Z100"


def test_blank_middle_rows_are_returned_as_empty_lists(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["a"], [], [], ["", "b"]])

    assert world.values(SID, "Data") == [["a"], [], [], ["", "b"]]


def test_empty_range_has_no_values_key(world: SheetsWorld) -> None:
    status, body = call(world, "GET", "/values/%27Data%27")
    assert (status, body) == (200, {"range": "Data!A1:Z1000", "majorDimension": "ROWS"})


@pytest.mark.parametrize(
    ("range_", "expected"),
    [
        ("'It''s data'!B2:C3", [["b2", "c2"], ["b3", "c3"]]),
        ("'It''s data'!A2:C", [["a2", "b2", "c2"], ["a3", "b3", "c3"]]),
        ("'It''s data'!B:B", [["b1"], ["b2"], ["b3"]]),
        ("'It''s data'!1:1", [["a1", "b1", "c1"]]),
        ("%27It%27%27s%20data%27%21C3", [["c3"]]),
    ],
)
def test_a1_ranges_quoted_open_ended_and_encoded(
    world: SheetsWorld, range_: str, expected: list[list[str]]
) -> None:
    world.add_sheet(SID, "It's data")
    grid = [[f"{col}{row}" for col in "abc"] for row in (1, 2, 3)]
    world.set_values(SID, "It's data", grid)

    status, body = call(world, "GET", f"/values/{range_}")
    assert (status, body["values"]) == (200, expected)


def test_columns_major_dimension_and_batch_get(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["a", "b"], ["c"]])

    query = "ranges=Data!A1:B2&ranges=A2&majorDimension=COLUMNS"
    status, body = call(world, "GET", f"/values:batchGet?{query}")
    assert status == 200
    assert [r["values"] for r in body["valueRanges"]] == [[["a", "c"], ["b"]], [["c"]]]


def test_unknown_sheet_in_range_is_400_and_unknown_spreadsheet_is_404(world: SheetsWorld) -> None:
    status, body = call(world, "GET", "/values/Nope!A1")
    assert status == 400
    assert body["error"] == {
        "code": 400,
        "message": "Unable to parse range: Nope!A1",
        "status": "INVALID_ARGUMENT",
    }
    answer = world.handle("GET", f"{API}/missing", {}, b"")
    assert (answer.status, answer.json()["error"]["status"]) == (404, "NOT_FOUND")
    assert answer.json()["error"]["message"] == "Requested entity was not found."


# ------------------------------------------------------------------ writing values


def test_values_update_beyond_grid_is_rejected(world: SheetsWorld) -> None:
    rows = [["x", "y"]] * 2000

    status, body = call(world, "PUT", "/values/'Data'!A1?valueInputOption=RAW", {"values": rows})

    assert status == 400
    assert body["error"]["message"] == (
        "Range ('Data'!A1:B2000) exceeds grid limits. Max rows: 1000, max columns: 26"
    )
    assert world.values(SID, "Data") == []


def test_write_larger_than_its_explicit_range_is_rejected(world: SheetsWorld) -> None:
    body = {"values": [["a"], ["b"], ["c"]]}
    status, answer = call(world, "PUT", "/values/Data!A1:A2?valueInputOption=RAW", body)
    assert status == 400
    assert answer["error"]["message"] == (
        "Requested writing within range [Data!A1:A2], but tried writing to row [3]"
    )


def test_values_update_requires_value_input_option(world: SheetsWorld) -> None:
    status, body = call(world, "PUT", "/values/Data!A1", {"values": [["a"]]})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


def test_values_batch_update_writes_nothing_when_one_range_is_bad(world: SheetsWorld) -> None:
    body = {
        "valueInputOption": "USER_ENTERED",
        "data": [
            {"range": "Data!A1", "values": [["ok"]]},
            {"range": "Data!A1001", "values": [["too far"]]},
        ],
    }
    status, _ = call(world, "POST", "/values:batchUpdate", body)
    assert status == 400
    assert world.values(SID, "Data") == []

    body["data"].pop()
    status, answer = call(world, "POST", "/values:batchUpdate", body)
    assert (status, answer["totalUpdatedCells"]) == (200, 1)


def test_append_writes_after_the_table_and_grows_the_grid(world: SheetsWorld) -> None:
    world.add_sheet(SID, "Log", rows=2, cols=2)
    world.set_values(SID, "Log", [["h1", "h2"]])

    path = "/values/Log!A1:B1:append?valueInputOption=USER_ENTERED"
    status, body = call(world, "POST", path, {"values": [["1", "2"], ["3", "4"]]})

    assert status == 200
    assert body["updates"]["updatedRange"] == "Log!A2:B3"
    assert world.values(SID, "Log") == [["h1", "h2"], [1, 2], [3, 4]]
    assert world.sheet(SID, "Log").row_count == 3


def test_gspread_insert_rows_and_append_rows_land_where_sheets_puts_them(
    gc: gspread.Client, world: SheetsWorld
) -> None:
    worksheet = gc.open_by_key(SID).worksheet("Data")
    worksheet.append_rows([["h"], ["a"]])
    worksheet.insert_rows([["inserted"]], row=2)  # insertDimension, then append at A2
    worksheet.append_rows([["last"]])

    assert world.values(SID, "Data") == [["h"], ["inserted"], ["a"], ["last"]]
    assert world.sheet(SID, "Data").row_count == 1001


def test_clear_and_batch_clear_remove_values(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["a", "b"], ["c", "d"]])

    assert call(world, "POST", "/values/Data!A1:A2:clear", {})[0] == 200
    assert call(world, "POST", "/values:batchClear", {"ranges": ["Data!B2"]})[0] == 200
    assert world.values(SID, "Data") == [["", "b"]]


# ------------------------------------------------------------------ spreadsheets.batchUpdate


def test_repeat_cell_with_wrap_mask_keeps_background_color(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["post text"]])
    blue = {"backgroundColor": {"blue": 1.0}}
    assert batch(world, repeat_cell(0, blue, "userEnteredFormat.backgroundColor"))[0] == 200

    clip = {"wrapStrategy": "CLIP", "backgroundColor": {"red": 1.0}}
    assert batch(world, repeat_cell(0, clip, "userEnteredFormat.wrapStrategy"))[0] == 200

    assert world.cell(SID, "Data", "A1").format == {
        "backgroundColor": {"blue": 1.0},
        "wrapStrategy": "CLIP",
    }


def test_repeat_cell_with_full_mask_wipes_other_formats(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["2024-01-05", "text"]])
    blue = {"backgroundColor": {"blue": 1.0}}
    batch(world, repeat_cell(0, blue, "userEnteredFormat"))

    assert batch(world, repeat_cell(0, {"wrapStrategy": "CLIP"}, "userEnteredFormat"))[0] == 200

    assert world.cell(SID, "Data", "B1").format == {"wrapStrategy": "CLIP"}
    assert "numberFormat" not in world.cell(SID, "Data", "A1").format  # the date lost its format
    assert world.values(SID, "Data", render="FORMATTED_VALUE") == [["45296", "text"]]


def test_repeat_cell_with_star_mask_also_wipes_values(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["keep me"]])
    batch(world, repeat_cell(0, {"wrapStrategy": "CLIP"}, "*"))
    assert world.values(SID, "Data") == []


def test_gspread_format_mask_with_parentheses(gc: gspread.Client, world: SheetsWorld) -> None:
    worksheet = gc.open_by_key(SID).worksheet("Data")
    worksheet.update([["a", "b"]], "A1")
    worksheet.format("A1:B1", {"textFormat": {"bold": True}, "wrapStrategy": "WRAP"})
    worksheet.format("A1", {"wrapStrategy": "CLIP"})

    assert world.cell(SID, "Data", "A1").format == {
        "textFormat": {"bold": True},
        "wrapStrategy": "CLIP",
    }
    assert world.cell(SID, "Data", "B1").format["wrapStrategy"] == "WRAP"


def test_update_dimension_properties_records_row_heights(world: SheetsWorld) -> None:
    request = {
        "updateDimensionProperties": {
            "range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 4},
            "properties": {"pixelSize": 21},
            "fields": "pixelSize",
        }
    }
    assert batch(world, request)[0] == 200
    assert world.row_heights(SID, "Data") == {1: 21, 2: 21, 3: 21}


def test_resize_beyond_cell_limit_is_rejected_and_changes_nothing() -> None:
    world = SheetsWorld(cell_limit=1000)
    world.create_spreadsheet(SID, ())
    world.add_sheet(SID, "Data", rows=10, cols=10)
    world.set_values(SID, "Data", [["kept"]])
    grow = resize(world.sheet(SID, "Data").sheet_id, rows=200, cols=6)
    small = {"rowCount": 2, "columnCount": 2}
    add = {"addSheet": {"properties": {"title": "Extra", "gridProperties": small}}}

    status, body = batch(world, add, grow)

    assert status == 400
    assert body["error"]["message"] == (
        "Invalid requests[1].updateSheetProperties: This action would increase the number of "
        "cells in the workbook above the limit of 1000 cells."
    )
    assert [s.title for s in world.spreadsheets[SID].sheets] == ["Data"]  # addSheet rolled back
    sheet = world.sheet(SID, "Data")
    assert (sheet.row_count, sheet.col_count) == (10, 10)
    assert world.values(SID, "Data") == [["kept"]]


def test_resize_checks_new_row_count_against_old_columns_first() -> None:
    # Sheets applies rowCount before columnCount (gspread-dataframe issue #37): 100 x 26 > 2000
    # even though the final 100 x 10 would fit.
    world = SheetsWorld(cell_limit=2000)
    world.create_spreadsheet(SID, ())
    sheet = world.add_sheet(SID, "Data", rows=10, cols=26)
    assert batch(world, resize(sheet.sheet_id, rows=100, cols=10))[0] == 400
    # gspread-dataframe's workaround: shrink the columns first, in a separate request.
    assert batch(world, resize(sheet.sheet_id, cols=10), resize(sheet.sheet_id, rows=100))[0] == 200


def test_shrinking_drops_cells_outside_the_grid(gc: gspread.Client, world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["a", "b"], ["c", "d"]])
    gc.open_by_key(SID).worksheet("Data").resize(rows=1, cols=1)
    gc.open_by_key(SID).worksheet("Data").resize(rows=5, cols=5)
    assert world.values(SID, "Data") == [["a"]]


def test_insert_and_delete_dimension_shift_cells(world: SheetsWorld) -> None:
    world.set_values(SID, "Data", [["r1"], ["r2"], ["r3"]])

    assert batch(world, dimension("insertDimension", 1, 3))[0] == 200
    assert world.values(SID, "Data") == [["r1"], [], [], ["r2"], ["r3"]]
    assert batch(world, dimension("deleteDimension", 0, 1))[0] == 200
    assert world.values(SID, "Data") == [[], [], ["r2"], ["r3"]]
    assert world.sheet(SID, "Data").row_count == 1001


def test_add_and_delete_sheet_and_unknown_request(world: SheetsWorld) -> None:
    status, body = batch(world, {"addSheet": {}})
    gid = body["replies"][0]["addSheet"]["properties"]["sheetId"]
    assert (status, body["replies"][0]["addSheet"]["properties"]["title"]) == (200, "Sheet2")

    status, _ = batch(world, {"deleteSheet": {"sheetId": gid}})
    assert status == 200
    assert [s.title for s in world.spreadsheets[SID].sheets] == ["Data"]
    status, body = batch(world, {"mergeCells": {}})
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")


# ------------------------------------------------------------------ faults, auth, stats


def test_scripted_429_then_success(gc: gspread.Client, world: SheetsWorld) -> None:
    worksheet = gc.open_by_key(SID).worksheet("Data")
    world.script("PUT", r"/values/", [(429, {"Retry-After": "1"})])

    with pytest.raises(gspread.exceptions.APIError) as caught:
        worksheet.update([["a"]], "A1")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "1"
    assert caught.value.response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert world.values(SID, "Data") == []

    worksheet.update([["a"]], "A1")
    assert world.values(SID, "Data") == [["a"]]


def test_scripted_drop_raises_connection_error_through_responses(
    gc: gspread.Client, world: SheetsWorld
) -> None:
    world.script("GET", r"^/v4/spreadsheets/[^/]+$", ["drop"])
    with pytest.raises(requests.exceptions.ConnectionError):
        gc.open_by_key(SID)
    world.script("*", ".", ["drop"])
    with pytest.raises(DropConnection):
        world.handle("GET", f"{API}/{SID}")
    assert gc.open_by_key(SID).id == SID


def test_error_rate_is_reproducible_with_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        world = SheetsWorld(error_rate=0.5, seed=seed)
        world.create_spreadsheet(SID)
        return [world.handle("GET", f"{API}/{SID}").status for _ in range(20)]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) > {200} and set(first) <= {200, 500, 503}


def test_require_auth_answers_401_without_bearer_token(world: SheetsWorld) -> None:
    world.require_auth = True
    answer = world.handle("GET", f"{API}/{SID}")
    assert (answer.status, answer.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    authed = world.handle("GET", f"{API}/{SID}", {"authorization": "Bearer sim-access-token"})
    assert authed.status == 200


def test_stats_count_reads_writes_kinds_and_bytes(world: SheetsWorld) -> None:
    body = {"values": [["a" * 100]]}
    call(world, "GET", "")
    call(world, "PUT", "/values/Data!A1?valueInputOption=RAW", body)
    world.handle("POST", "https://oauth2.googleapis.com/token", {}, b"grant_type=x&assertion=y")

    stats = world.stats
    size = len(json.dumps(body))
    assert (stats.requests, stats.reads, stats.writes) == (3, 1, 1)
    assert stats.by_kind == {"metadata": 1, "values_update": 1, "token": 1}
    assert stats.bytes_received == size + len(b"grant_type=x&assertion=y")
    assert stats.largest_request_body == size
    assert stats.log[1] == ("PUT", f"/v4/spreadsheets/{SID}/values/Data!A1", "values_update", size)
    world.reset_stats()
    assert world.stats.requests == 0


def test_concurrent_writes_are_all_applied(world: SheetsWorld) -> None:
    def write(row: int) -> None:
        path = f"/values/Data!A{row}?valueInputOption=RAW"
        assert call(world, "PUT", path, {"values": [[f"r{row}"]]})[0] == 200

    threads = [threading.Thread(target=write, args=(row,)) for row in range(1, 101)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert world.values(SID, "Data") == [[f"r{row}"] for row in range(1, 101)]
    assert world.stats.writes == 100


# ------------------------------------------------------------------ real server


class _ToLoopback(requests.adapters.HTTPAdapter):
    """Send gspread's hard-coded https://sheets.googleapis.com requests to the simulator."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.url = request.url.replace("https://sheets.googleapis.com", self.base_url, 1)
        return super().send(request, **kwargs)


def test_real_server_round_trip_over_loopback(world: SheetsWorld) -> None:
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    world.require_auth = True
    with serve(world) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        info = service_account_info(f"{server.base_url}/token")
        scopes = ["https://www.googleapis.com/auth/spreadsheets"]
        creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        session = AuthorizedSession(creds)
        session.mount("https://sheets.googleapis.com", _ToLoopback(server.base_url))
        worksheet = gspread.Client(auth=None, session=session).open_by_key(SID).sheet1

        worksheet.update([[LONG_ID, "'0012"]], "A1", value_input_option="USER_ENTERED")
        assert worksheet.get_all_values() == [["1.78900123456789E+17", "0012"]]
        assert requests.get(f"{server.base_url}/v4/spreadsheets/{SID}").status_code == 401

        world.script("GET", r"/values/", ["drop"])
        with pytest.raises(requests.exceptions.ConnectionError):
            worksheet.get_all_values()
        assert worksheet.get_all_values()[0][1] == "0012"  # a new connection works again

    assert world.stats.by_kind["token"] == 1
    assert world.stats.by_kind["values_update"] == 1
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.base_url}/v4/spreadsheets/{SID}", timeout=2)
