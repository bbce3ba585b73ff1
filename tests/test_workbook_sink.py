"""The local workbook sink keeps the Google sheet's rules: exact text, analysts' cells untouched,
no formula from a post, clean failures that never lose the file."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from openpyxl.styles import Alignment, Font, PatternFill

import workbook_sink
from accounts import parse_accounts
from merge import merge_posts
from sink import ACCOUNTS_SHEET, DATA_SHEET, CellUpdate, SinkError
from threads_simulator import HOSTILE_TEXTS
from workbook_sink import WorkbookSink

HOSTILE = [
    *HOSTILE_TEXTS,
    "=",
    "  spaces at both ends  ",
    "Первая строка\n\nтретья\r\nконец\tтаб 👨‍👩‍👧",
]
LONG_ID = "178901234567890123"  # 18 digits: a float would round it
OWNED = ["account_name", "post_id", "text", "views", "is_quote_post", "updated_at"]


def new_workbook(path: Path, data: list[list] | None = None) -> Path:
    """A workbook with an accounts sheet and, when given, a data sheet with these rows."""
    workbook = openpyxl.Workbook()
    accounts = workbook.active
    accounts.title = ACCOUNTS_SHEET
    accounts.append(["account_name", "access_token", "note"])
    accounts.append(["anna", "token-anna-123456", "=1+1"])
    if data is not None:
        sheet = workbook.create_sheet(DATA_SHEET)
        for row in data:
            sheet.append(row)
    workbook.save(path)
    return path


def data_sheet(path: Path) -> openpyxl.worksheet.worksheet.Worksheet:
    """The data sheet as saved on disk."""
    return openpyxl.load_workbook(path)[DATA_SHEET]


def hostile_frame() -> pd.DataFrame:
    """One row per hostile text, the first with an 18-digit id."""
    ids = [LONG_ID] + [f"1789012345678901{index:02d}" for index in range(1, len(HOSTILE))]
    return pd.DataFrame(
        {
            "account_name": "anna",
            "post_id": ids,
            "text": HOSTILE,
            "views": [7] + [None] * (len(HOSTILE) - 1),
            "is_quote_post": [True] + [False] * (len(HOSTILE) - 1),
            "updated_at": "2025-06-01T12:00:00Z",
        },
        dtype=object,
    )


def test_hostile_texts_round_trip_as_text_not_formulas(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx")
    WorkbookSink(str(path)).write_posts(hostile_frame(), OWNED)

    sheet = data_sheet(path)
    texts = [sheet.cell(row, 3) for row in range(2, len(HOSTILE) + 2)]
    assert [cell.value for cell in texts] == HOSTILE
    assert {cell.data_type for cell in texts} == {"s"}  # never "f": no formula was created
    assert sheet["B2"].value == LONG_ID and sheet["B2"].data_type == "s"
    assert sheet["D2"].value == 7 and isinstance(sheet["D2"].value, int)
    assert sheet["D3"].value is None
    assert sheet["E2"].value is True

    frame = WorkbookSink(str(path)).read_posts()
    assert frame["text"].tolist() == HOSTILE
    assert frame["post_id"].tolist()[0] == LONG_ID
    assert frame["views"].tolist()[:2] == [7, None]


def test_characters_xml_cannot_hold_are_escaped_instead_of_failing(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx")
    frame = pd.DataFrame({"account_name": ["anna"], "post_id": ["1"], "text": ["a\x0bb\x00"]})
    WorkbookSink(str(path)).write_posts(frame, OWNED)
    assert data_sheet(path)["C2"].value == "a_x000B_b_x0000_"  # how Excel itself stores them


def test_analyst_columns_formulas_and_styles_are_untouched(tmp_path: Path) -> None:
    path = new_workbook(
        tmp_path / "book.xlsx",
        [
            ["account_name", "post_id", "note", "text", "length"],
            ["anna", LONG_ID, "keep me", "old text", "=LEN(D2)"],
            [None, None, "a blank row an analyst uses", None, None],
            ["anna", "2", 42, "second", "=LEN(D4)"],
        ],
    )
    workbook = openpyxl.load_workbook(path)
    sheet = workbook[DATA_SHEET]
    sheet["C2"].font = Font(bold=True)
    sheet["C2"].fill = PatternFill("solid", fgColor="FFFF00")
    sheet.column_dimensions["C"].width = 40
    workbook.save(path)

    sink = WorkbookSink(str(path))
    existing = sink.read_posts()
    assert existing["length"].tolist() == ["=LEN(D2)", None, "=LEN(D4)"]  # formulas as text
    fresh = pd.DataFrame(
        {"account_name": ["anna", "anna"], "post_id": [LONG_ID, "3"], "text": ["new", "third"]}
    )
    owned = ["account_name", "post_id", "text", "views"]
    sink.write_posts(merge_posts(existing, fresh, owned).frame, owned)

    sheet = data_sheet(path)
    header = [cell.value for cell in sheet[1]]
    assert header == ["account_name", "post_id", "note", "text", "length", "views"]
    assert sheet["C2"].value == "keep me" and sheet["C2"].font.bold
    assert sheet["C2"].fill.fgColor.rgb == "00FFFF00"
    assert sheet.column_dimensions["C"].width == 40
    assert sheet["C3"].value == "a blank row an analyst uses" and sheet["C4"].value == 42
    assert sheet["E2"].data_type == "f" and sheet["E2"].value == "=LEN(D2)"
    assert sheet["E4"].value == "=LEN(D4)"
    assert [sheet[f"D{row}"].value for row in range(2, 6)] == ["new", None, "second", "third"]
    assert sheet["B5"].value == "3" and sheet.max_row == 5


def test_wrapping_off_and_rows_15_75_pt_after_write(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx", [["account_name", "post_id", "text"]])
    workbook = openpyxl.load_workbook(path)
    sheet = workbook[DATA_SHEET]
    sheet["C1"].alignment = Alignment(wrap_text=True, horizontal="center", vertical="top")
    sheet.row_dimensions[1].height = 60
    workbook.save(path)

    frame = pd.DataFrame(
        {"account_name": ["anna"] * 3, "post_id": ["1", "2", "3"], "text": ["a\nb", "c", "d"]}
    )
    WorkbookSink(str(path)).write_posts(frame, OWNED)

    sheet = data_sheet(path)
    cells = [cell for row in sheet.iter_rows(min_row=1, max_row=4, max_col=3) for cell in row]
    assert not any(cell.alignment.wrap_text for cell in cells)
    assert sheet["C1"].alignment.horizontal == "center"
    assert sheet["C1"].alignment.vertical == "top"
    assert [sheet.row_dimensions[row].height for row in range(1, 5)] == [15.75] * 4


@pytest.mark.parametrize("lock_name", [".~lock.book.xlsx#", "~$book.xlsx"])
def test_locked_workbook_fails_cleanly_and_file_is_unchanged(
    tmp_path: Path, lock_name: str
) -> None:
    path = new_workbook(tmp_path / "book.xlsx", [["account_name", "post_id"], ["anna", "1"]])
    sink = WorkbookSink(str(path))
    frame = sink.read_posts()
    before = path.read_bytes()
    (tmp_path / lock_name).write_text("someone,host,2025")

    with pytest.raises(SinkError, match="open in another program") as raised:
        sink.write_posts(frame, OWNED)
    assert lock_name in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(SinkError, match="open in another program"):
        WorkbookSink(str(path)).read_accounts()
    assert path.read_bytes() == before


def test_permission_denied_on_replace_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = new_workbook(tmp_path / "book.xlsx")
    before = path.read_bytes()

    def refuse(*_args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(workbook_sink.os, "replace", refuse)
    with pytest.raises(SinkError, match="permission denied"):
        WorkbookSink(str(path)).write_posts(hostile_frame(), OWNED)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["book.xlsx"]


def truncated_xlsx(path: Path) -> bytes:
    """The first half of a real workbook."""
    new_workbook(path)
    return path.read_bytes()[: len(path.read_bytes()) // 2]


def zip_without_workbook(path: Path) -> bytes:
    """A zip archive that is not a workbook."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    return path.read_bytes()


@pytest.mark.parametrize(
    "make_bytes",
    [lambda _path: b"not a zip at all", truncated_xlsx, zip_without_workbook],
    ids=["text", "truncated", "zip-without-workbook"],
)
def test_corrupt_workbook_fails_cleanly_and_file_is_unchanged(tmp_path: Path, make_bytes) -> None:
    path = tmp_path / "book.xlsx"
    content = make_bytes(path)
    path.write_bytes(content)

    sink = WorkbookSink(str(path))
    with pytest.raises(SinkError, match="not a readable .xlsx") as raised:
        sink.read_accounts()
    assert "restore it from a backup" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(SinkError):
        sink.write_posts(hostile_frame(), OWNED)
    assert path.read_bytes() == content


def test_write_is_atomic_when_save_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = new_workbook(tmp_path / "book.xlsx", [["account_name", "post_id"], ["anna", "1"]])
    before = path.read_bytes()
    sink = WorkbookSink(str(path))

    def disk_full(_descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(workbook_sink.os, "fsync", disk_full)
        with pytest.raises(SinkError, match="No space left on device.*not changed"):
            sink.write_posts(hostile_frame(), OWNED)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["book.xlsx"]  # the temp file is gone too
    # The sink forgot its half-changed copy: it reads what is on disk.
    assert sink.read_posts()["post_id"].tolist() == ["1"]


def test_account_cells_write_only_those_cells(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx", [["account_name", "post_id"], ["anna", "1"]])
    WorkbookSink(str(path)).write_account_cells(
        [CellUpdate(2, 2, "=new-token"), CellUpdate(1, 4, "token_expires_at")]
    )
    workbook = openpyxl.load_workbook(path)
    accounts = workbook[ACCOUNTS_SHEET]
    assert [[cell.value for cell in row] for row in accounts.iter_rows()] == [
        ["account_name", "access_token", "note", "token_expires_at"],
        ["anna", "=new-token", "=1+1", None],
    ]
    assert accounts["B2"].data_type == "s" and accounts["C2"].data_type == "f"
    assert workbook[DATA_SHEET]["B2"].value == "1"


def test_empty_cells_read_as_blank_like_the_sheets_api(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx")
    workbook = openpyxl.load_workbook(path)
    workbook[ACCOUNTS_SHEET].append([None, "token-without-a-name"])
    workbook[ACCOUNTS_SHEET].append(["ivan", None, "note"])
    workbook.save(path)

    grid = WorkbookSink(str(path)).read_accounts()
    assert grid[2:] == [["", "token-without-a-name"], ["ivan", "", "note"]]
    # so the accounts parser skips both rows instead of syncing an account named "None"
    assert [account.name for account in parse_accounts(grid)] == ["anna"]


def test_missing_workbook_or_accounts_sheet_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="not found: create it with a sheet 'accounts_threads'"):
        WorkbookSink(str(tmp_path / "none.xlsx")).read_accounts()
    path = tmp_path / "book.xlsx"
    openpyxl.Workbook().save(path)
    with pytest.raises(SinkError, match="no sheet 'accounts_threads'"):
        WorkbookSink(str(path)).read_accounts()


def test_loads_once_and_again_only_after_an_external_change(tmp_path: Path) -> None:
    path = new_workbook(tmp_path / "book.xlsx", [["account_name", "post_id"], ["anna", "1"]])
    sink = WorkbookSink(str(path))
    sink.read_accounts()
    sink.read_posts()
    assert sink.requests_made == 1

    new_workbook(path, [["account_name", "post_id"], ["anna", "1"], ["anna", "2"]])
    assert sink.read_posts()["post_id"].tolist() == ["1", "2"]
    assert sink.requests_made == 2
    sink.write_posts(sink.read_posts(), OWNED)
    sink.read_posts()
    assert sink.requests_made == 3  # the save counts; our own save is not a change
