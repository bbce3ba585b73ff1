"""Stateful Google Sheets API v4 simulator for tests and benchmarks (standard library only).

It answers the calls gspread 6.2.1 and gspread-dataframe 4.0.0 make, keeps a sparse grid per
tab and behaves like Sheets where a verbatim fake would hide bugs: USER_ENTERED parsing (15
significant digits, a leading apostrophe forces text, "=" makes a formula, dates become serial
numbers), grid and cell-count limits, field masks on repeatCell, atomic batchUpdate, Google's
error shape, scripted faults. Ways in: ``SheetsWorld.handle`` (the core), ``serve`` (an HTTP
server on 127.0.0.1) and ``register_with_responses`` (the ``responses`` library).
Error messages and limits follow developers.google.com/sheets/api and messages quoted in
gspread, pygsheets and gspread-dataframe issues (e.g. the rowCount-first cell check, #37).

Choices made where Google documents nothing (keep tests independent of them):
- Formulas are stored, never evaluated: FORMATTED_VALUE and UNFORMATTED_VALUE read every
  formula back as ``#NAME?``; FORMULA returns its text.
- ``2023-10-17T05:42:03+0000`` (ISO with ``T`` or an offset) stays text; so do ``N/A``, ``-``,
  ``@x``, phone numbers. Only ``yyyy-mm-dd``, ``yyyy/mm/dd``, ``m/d/yyyy`` (en_US), each with an
  optional `` h:mm[:ss]``, and a lone ``h:mm[:ss]`` become dates or times.
- Surrounding spaces are ignored when recognising numbers, booleans and dates.
- A cell whose numberFormat is TEXT keeps typed input as text (as in the Sheets UI).
- Default number display: integers without ``.0``, at most 10 decimals, scientific notation
  (``1.78900123456789E+16``) from 1e15 up.
- Formats live on cells that hold (or held) a value: repeatCell over empty cells is not
  remembered, and inserted rows and columns inherit no formats.
- values:append writes below the block of consecutive rows holding data that starts at the
  range's first row (a simple take on Sheets' table detection); it grows the grid if needed.
- "$5" is the number 5, but the currency display format is not modelled.
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, lru_cache
from http import HTTPStatus
from itertools import zip_longest
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import sim_http
from sim_http import DropConnection, SimResponse

DEFAULT_CELL_LIMIT = 10_000_000
DEFAULT_ROWS = 1000
DEFAULT_COLS = 26
SIGNIFICANT_DIGITS = 15
SCIENTIFIC_FROM = 1e15
MAX_DECIMALS = 10
SERIAL_EPOCH = datetime(1899, 12, 30)
FORMULA_ERROR = "#NAME?"
SHEETS_BASE_URL = "https://sheets.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
TOKEN_BODY = {"access_token": "sim-access-token", "expires_in": 3599, "token_type": "Bearer"}
JSON_HEADERS = {"Content-Type": "application/json; charset=UTF-8"}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
FAULT_MESSAGES = {
    429: "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute"
    " per user' of service 'sheets.googleapis.com' for consumer 'project_number:0'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
NOT_FOUND = "Requested entity was not found."
DUPLICATE_TITLE = 'A sheet with the name "{title}" already exists. Please enter another name.'
CELL_LIMIT_MESSAGE = (
    "This action would increase the number of cells in the workbook above the limit of {limit} "
    "cells."
)
UNAUTHENTICATED = (
    "Request is missing required authentication credential. Expected OAuth 2 access token."
)
INPUT_OPTIONS = ("RAW", "USER_ENTERED")
RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
MOMENT_TYPES = ("DATE", "TIME", "DATE_TIME")
TEXT_FORMAT = "TEXT"
NUMERIC_START = frozenset("0123456789+-.$")  # every number or date Sheets parses starts so
EMPTY_FORMAT: dict[str, Any] = {}  # shared by unformatted cells, never mutated

_ID = r"/v4/spreadsheets/(?P<sid>[^/:]+)"
ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("token", re.compile(r"/token")),
    ("batch_update", re.compile(_ID + r":batchUpdate")),
    ("values_batch_get", re.compile(_ID + r"/values:batchGet")),
    ("values_batch_update", re.compile(_ID + r"/values:batchUpdate")),
    ("values_batch_clear", re.compile(_ID + r"/values:batchClear")),
    ("values_append", re.compile(_ID + r"/values/(?P<range>.+):append")),
    ("values_clear", re.compile(_ID + r"/values/(?P<range>.+):clear")),
    ("values", re.compile(_ID + r"/values/(?P<range>.+)")),
    ("metadata", re.compile(_ID)),
)
# The number Sheets would recognise, with the format it records for the cell (None: automatic).
NUMBER_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<cur>\$?)(?P<num>(?=\.?\d)(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d*)?)"
    r"(?P<exp>[eE][+-]?\d+)?(?P<pct>%?)"
)
DATE_FORMS = (
    (re.compile(r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"), "yyyy-mm-dd"),
    (re.compile(r"(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})"), "yyyy/mm/dd"),
    (re.compile(r"(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"), "M/d/yyyy"),
)
TIME_RE = re.compile(r"(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?")
DAY_FIELDS = {"yyyy": "{0.year:04d}", "mm": "{0.month:02d}", "MM": "{0.month:02d}",
              "dd": "{0.day:02d}", "M": "{0.month}", "d": "{0.day}"}  # fmt: skip
CLOCK_FIELDS = {
    "HH": "{0.hour:02d}",
    "H": "{0.hour}",
    "mm": "{0.minute:02d}",
    "ss": "{0.second:02d}",
}
CELL_RE = re.compile(r"([A-Za-z]{0,3})(\d*)")
Parsed = tuple[str, Any, dict[str, str] | None]
Query = dict[str, list[str]]


class SheetsError(Exception):
    """An API error answered as Google's {"error": {"code", "message", "status"}}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Cell(NamedTuple):
    """One non-empty cell; ``format`` is its userEnteredFormat (shared: never mutate it).

    ``kind`` is number, string, bool or formula; "empty" marks a cleared cell kept only for its
    own format, and is never returned by the helpers. A tuple, because a big sheet holds
    millions of them.
    """

    kind: str
    value: Any
    format: dict[str, Any] = EMPTY_FORMAT


@dataclass
class Sheet:
    """One tab: grid size, sparse cells keyed (row, col) 0-based, row/column pixel sizes."""

    sheet_id: int
    title: str
    index: int
    row_count: int = DEFAULT_ROWS
    col_count: int = DEFAULT_COLS
    cells: dict[tuple[int, int], Cell] = field(default_factory=dict)
    row_heights: dict[int, int] = field(default_factory=dict)
    col_widths: dict[int, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other SheetProperties, e.g. hidden

    def properties(self) -> dict[str, Any]:
        """The sheet's SheetProperties as the API returns them."""
        grid = {"rowCount": self.row_count, "columnCount": self.col_count}
        grid.update(self.extra.get("gridProperties", {}))
        props = {k: v for k, v in self.extra.items() if k != "gridProperties"}
        base = {"sheetId": self.sheet_id, "title": self.title, "index": self.index}
        return {**base, "sheetType": "GRID", "gridProperties": grid, **props}


@dataclass
class Spreadsheet:
    """A spreadsheet file with its tabs in order."""

    spreadsheet_id: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)

    def find(self, title: str) -> Sheet | None:
        """The tab with this title, if any."""
        return next((s for s in self.sheets if s.title == title), None)

    def by_id(self, sheet_id: Any) -> Sheet:
        """The tab with this gid, or a 400 like Google's."""
        found = next((s for s in self.sheets if s.sheet_id == sheet_id), None)
        if found is None:
            raise SheetsError(400, f"No grid with id: {sheet_id}")
        return found


@dataclass
class Stats:
    """Request counters; ``SheetsWorld.stats`` hands out consistent copies."""

    requests: int = 0
    reads: int = 0
    writes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0
    largest_request_body: int = 0
    log: list[tuple[str, str, str, int]] = field(default_factory=list)


@dataclass
class GridRange:
    """A parsed A1 range, end-exclusive; ``bounded`` is False for a single cell or whole tab."""

    sheet: Sheet
    r0: int
    c0: int
    r1: int
    c1: int
    bounded: bool
    text: str


# ---------------------------------------------------------------- numbers and USER_ENTERED


def round15(value: float) -> float:
    """Keep 15 significant digits, as Sheets does for every number it stores."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


@cache
def _number_format(kind: str, pattern: str) -> dict[str, str]:
    """One shared dict per number format, so cells can share formats."""
    return {"type": kind, "pattern": pattern}


def _parse_number(text: str) -> tuple[float, dict[str, str] | None] | None:
    match = NUMBER_RE.fullmatch(text)
    if not match or (match["cur"] and (match["exp"] or match["pct"])):
        return None
    value = float(match["num"].replace(",", "") + (match["exp"] or ""))
    value = -value if match["sign"] == "-" else value
    decimals = "0.00" if "." in match["num"] else "0"
    if match["pct"]:
        return value / 100, _number_format("PERCENT", decimals + "%")
    if match["exp"]:
        return value, _number_format("SCIENTIFIC", "0.00E+00")
    if "," in match["num"]:
        return value, _number_format("NUMBER", "#,##0" + decimals[1:])
    return value, None


@lru_cache(maxsize=100_000)  # the same days and times recur across a sheet
def _parse_time(text: str) -> float | None:
    """ "h:mm[:ss]" as a fraction of a day."""
    match = TIME_RE.fullmatch(text)
    if not match:
        return None
    hours, minutes, seconds = int(match["H"]), int(match["M"]), int(match["S"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return (hours * 3600 + minutes * 60 + seconds) / 86400


@lru_cache(maxsize=100_000)
def _parse_day(text: str) -> tuple[int, str] | None:
    """A date in one of DATE_FORMS as (days since 1899-12-30, its pattern)."""
    for regex, pattern in DATE_FORMS:
        match = regex.fullmatch(text)
        if match:
            try:
                day = datetime(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
            return (day - SERIAL_EPOCH).days, pattern
    return None


def _parse_moment(text: str) -> tuple[float, dict[str, str]] | None:
    day_text, _, time_text = text.partition(" ")
    day, time_text = _parse_day(day_text), time_text.strip()
    if day is None:
        clock = _parse_time(text)
        return None if clock is None else (clock, _number_format("TIME", "H:mm:ss"))
    if not time_text:
        return float(day[0]), _number_format("DATE", day[1])
    clock = _parse_time(time_text)
    if clock is None:
        return None
    return day[0] + clock, _number_format("DATE_TIME", day[1] + " H:mm:ss")


def parse_user_entered(text: str, current: Mapping[str, Any] | None = None) -> Parsed | None:
    """Interpret typed text as Sheets does: (kind, value, numberFormat), or None to clear."""
    if text == "" or text == "'":
        return None
    if text[0] == "'":
        return "string", text[1:], None
    if current and current.get("numberFormat", {}).get("type") == TEXT_FORMAT:
        return "string", text, None
    if text[0] == "=" and len(text) > 1:
        return "formula", text, None
    stripped = text.strip()
    if stripped and stripped[0] in NUMERIC_START:
        number = _parse_number(stripped)
        if number is not None:
            return "number", round15(number[0]), number[1]
        moment = _parse_moment(stripped)  # a serial number, kept exact
        if moment is not None:
            return "number", moment[0], moment[1]
    elif stripped.upper() in ("TRUE", "FALSE"):
        return "bool", stripped.upper() == "TRUE", None
    return "string", text, None


def parse_input(raw: Any, option: str, current: Mapping[str, Any] | None = None) -> Parsed | None:
    """Interpret one JSON value under RAW or USER_ENTERED; None clears the cell."""
    kind = type(raw)  # exact type checks: this runs once per written cell
    if kind is str:
        if option == "RAW":
            return ("string", raw, None) if raw else None
        return parse_user_entered(raw, current)
    if kind is bool:
        return "bool", raw, None
    if kind is int or kind is float:
        return "number", round15(raw), None
    raise SheetsError(400, f"Invalid values: unsupported value {raw!r}")


# ---------------------------------------------------------------- rendering


def general_display(value: float) -> str:
    """Sheets' automatic number display: 42, 0.5, 1.78900123456789E+16."""
    if abs(value) >= SCIENTIFIC_FROM:
        mantissa, exponent = f"{value:.{SIGNIFICANT_DIGITS - 1}E}".split("E")
        return f"{mantissa.rstrip('0').rstrip('.')}E{exponent}"
    if value.is_integer():
        return str(int(value))
    return f"{value:.{MAX_DECIMALS}f}".rstrip("0").rstrip(".")


@cache
def _moment_template(pattern: str) -> str:
    """A str.format template for a date/time pattern such as "M/d/yyyy H:mm:ss"."""
    day, _, clock = pattern.replace("{", "{{").replace("}", "}}").partition(" ")
    if ":" in day:
        day, clock = "", day
    day = re.sub(r"yyyy|mm|MM|dd|M|d", lambda m: DAY_FIELDS[m[0]], day)
    clock = re.sub(r"HH|H|mm|ss", lambda m: CLOCK_FIELDS[m[0]], clock)
    return " ".join(part for part in (day, clock) if part)


def format_number(value: float, number_format: Mapping[str, str]) -> str:
    """Display a number under the cell's numberFormat (the handful of formats we record)."""
    kind, pattern = number_format.get("type"), number_format.get("pattern", "")
    decimals = len(pattern.split(".")[1].rstrip("%E+")) if "." in pattern else 0
    if kind in MOMENT_TYPES:
        moment = SERIAL_EPOCH + timedelta(seconds=round(value * 86400))
        return _moment_template(pattern).format(moment)
    if kind == "PERCENT":
        return f"{value * 100:.{decimals}f}%"
    if kind == "SCIENTIFIC":
        return f"{value:.2E}"
    if kind == "NUMBER" and "#,##0" in pattern:
        return f"{value:,.{decimals}f}"
    return general_display(value)


def json_number(value: float) -> int | float:
    """A number as UNFORMATTED_VALUE returns it: integral values as ints."""
    return int(value) if value.is_integer() else value


def render(cell: Cell, option: str = "FORMATTED_VALUE", dates: str = "SERIAL_NUMBER") -> Any:
    """A cell's value as values.get returns it for the given render options."""
    if cell.kind == "string":
        return cell.value
    if cell.kind == "bool":
        return ("TRUE" if cell.value else "FALSE") if option == "FORMATTED_VALUE" else cell.value
    value = cell.value
    if cell.kind == "formula":
        return value if option == "FORMULA" else FORMULA_ERROR  # no formula engine here
    number_format = cell.format.get("numberFormat") or {}
    if option == "FORMATTED_VALUE":
        return format_number(value, number_format)
    if number_format.get("type") in MOMENT_TYPES and dates == "FORMATTED_STRING":
        return format_number(value, number_format)
    return json_number(value)


# ---------------------------------------------------------------- A1 ranges and field masks


def col_letters(col: int) -> str:
    """0-based column index to letters: 0 -> A, 26 -> AA."""
    letters = ""
    col += 1
    while col:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _col_index(letters: str) -> int:
    index = 0
    for char in letters.upper():
        index = index * 26 + ord(char) - 64
    return index - 1


def quote_title(title: str) -> str:
    """A tab title as it appears in an A1 range, quoted when Sheets would quote it."""
    if re.fullmatch(r"[A-Za-z_]\w*", title) and not re.fullmatch(r"[A-Za-z]{1,3}\d+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


def a1(title: str, r0: int, c0: int, r1: int, c1: int, quote: bool = False) -> str:
    """An A1 range for end-exclusive bounds; a single cell is written as one reference."""
    name = "'" + title.replace("'", "''") + "'" if quote else quote_title(title)
    start, end = f"{col_letters(c0)}{r0 + 1}", f"{col_letters(c1 - 1)}{r1}"
    return f"{name}!{start}" if start == end else f"{name}!{start}:{end}"


def _split_title(text: str) -> tuple[str | None, str]:
    """Split "'It''s'!A1:B2" into the title and the cell part ("" for a whole tab)."""
    if not text.startswith("'"):
        title, bang, cells = text.partition("!")
        return (title, cells) if bang else (None, text)
    i, chars = 1, []
    while i < len(text):
        if text[i] == "'" and text[i + 1 : i + 2] == "'":
            chars.append("'")
            i += 2
        elif text[i] == "'":
            rest = text[i + 1 :]
            if rest and not rest.startswith("!"):
                break
            return "".join(chars), rest[1:]
        else:
            chars.append(text[i])
            i += 1
    raise SheetsError(400, f"Unable to parse range: {text}")


def _endpoint(text: str) -> tuple[int | None, int | None] | None:
    match = CELL_RE.fullmatch(text)
    if not match or not text or (match[2] and int(match[2]) == 0):
        return None
    col = _col_index(match[1]) if match[1] else None
    return col, int(match[2]) - 1 if match[2] else None


def parse_range(book: Spreadsheet, text: str, check_grid: bool = True) -> GridRange:
    """Resolve an A1 range (quoted or bare title, open-ended, or cells on the first tab)."""
    title, cells = _split_title(text)
    if title is None:
        sheet = book.find(text)
        title, cells = (text, "") if sheet else (book.sheets[0].title, text)
    sheet = book.find(title)
    if sheet is None:
        raise SheetsError(400, f"Unable to parse range: {text}")
    if not cells:
        return GridRange(sheet, 0, 0, sheet.row_count, sheet.col_count, False, text)
    first, colon, last = cells.partition(":")
    start, end = _endpoint(first), _endpoint(last) if colon else None
    if start is None or (colon and end is None) or (not colon and None in start):
        raise SheetsError(400, f"Unable to parse range: {text}")
    end = end or start
    rows = [i for i in (start[1], end[1]) if i is not None]
    cols = [i for i in (start[0], end[0]) if i is not None]
    if check_grid and (
        (rows and max(rows) >= sheet.row_count) or (cols and max(cols) >= sheet.col_count)
    ):
        raise SheetsError(400, _grid_message(text, sheet))
    r0, c0 = min(rows, default=0), min(cols, default=0)
    r1 = max(rows) + 1 if None not in (start[1], end[1]) else sheet.row_count
    c1 = max(cols) + 1 if None not in (start[0], end[0]) else sheet.col_count
    return GridRange(sheet, r0, c0, r1, c1, bool(colon), text)


def _grid_message(text: str, sheet: Sheet) -> str:
    return (
        f"Range ({text}) exceeds grid limits. "
        f"Max rows: {sheet.row_count}, max columns: {sheet.col_count}"
    )


def parse_mask(mask: str, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Field mask to paths: "a.b,c(d,e)" -> [(a, b), (c, d), (c, e)]; "/" works like "."."""
    paths, depth, part = [], 0, ""
    for char in mask + ",":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            part = part.strip()
            if "(" in part:
                head, _, inner = part.partition("(")
                paths += parse_mask(inner[:-1], prefix + _split_path(head))
            elif part:
                paths.append(prefix + _split_path(part))
            part = ""
        else:
            part += char
    return paths


def _split_path(text: str) -> tuple[str, ...]:
    return tuple(p for p in re.split(r"[./]", text.strip()) if p)


def _path_covered(path: tuple[str, ...], paths: tuple[tuple[str, ...], ...]) -> bool:
    return any(p in ((), ("*",)) or path[: len(p)] == p for p in paths)


def apply_mask(
    target: Mapping[str, Any], source: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]
) -> dict[str, Any]:
    """A copy of target with the masked fields taken from source (absent there: removed)."""
    result = copy.deepcopy(dict(target))
    for path in paths:
        if path in ((), ("*",)):
            result = copy.deepcopy(dict(source))
            continue
        value: Any = source
        for key in path:
            value = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        parent = result
        for key in path[:-1]:
            parent = parent.setdefault(key, {}) if isinstance(parent.get(key, {}), dict) else {}
        if value is _MISSING:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return result


_MISSING = object()


# ---------------------------------------------------------------- grid operations


def _cells_in(sheet: Sheet, r0: int, c0: int, r1: int, c1: int) -> list[tuple[int, int]]:
    """Keys of stored cells inside the bounds, scanning whichever is smaller: range or cells."""
    cells = sheet.cells
    if (r1 - r0) * (c1 - c0) < len(cells):
        keys = ((r, c) for r in range(r0, r1) for c in range(c0, c1))
        return [key for key in keys if key in cells]
    return [key for key in cells if r0 <= key[0] < r1 and c0 <= key[1] < c1]


def read_grid(grid: GridRange, option: str, dates: str, major: str = "ROWS") -> list[list[Any]]:
    """Rendered values of a range, trimming trailing empty rows and cells like the API."""
    lines: dict[int, dict[int, Any]] = {}
    cells, by_rows = grid.sheet.cells, major == "ROWS"
    for r, c in _cells_in(grid.sheet, grid.r0, grid.c0, grid.r1, grid.c1):
        cell = cells[(r, c)]
        if cell.kind == "empty":
            continue
        value = cell.value if cell.kind == "string" else render(cell, option, dates)
        outer, inner = (r - grid.r0, c - grid.c0) if by_rows else (c - grid.c0, r - grid.r0)
        line = lines.get(outer)
        if line is None:
            line = lines[outer] = {}
        line[inner] = value
    result = []
    for i in range(max(lines, default=-1) + 1):
        line = lines.get(i)
        result.append([line.get(j, "") for j in range(max(line) + 1)] if line else [])
    return result


def _write(sheet: Sheet, r0: int, c0: int, rows: list[list[Any]], option: str) -> None:
    """Store parsed values; a typed date also gives its cell a date format, as in Sheets."""
    cells = sheet.cells
    merged: dict[tuple[int, int], tuple[dict[str, Any], dict[str, Any]]] = {}
    for i, row in enumerate(rows):
        for j, raw in enumerate(row):
            if raw is None:  # JSON null leaves the cell as it is
                continue
            key = (r0 + i, c0 + j)
            old = cells.get(key)
            fmt = EMPTY_FORMAT if old is None else old.format
            parsed = parse_input(raw, option, fmt)
            if parsed is None:
                _clear_cell(sheet, key)
                continue
            kind, value, number_format = parsed
            if number_format is not None and "numberFormat" not in fmt:
                memo_key = (id(fmt), id(number_format))  # the memo holds fmt: ids stay unique
                if memo_key not in merged:
                    merged[memo_key] = (fmt, {**fmt, "numberFormat": number_format})
                fmt = merged[memo_key][1]
            cells[key] = Cell(kind, value, fmt)


def _clear_cell(sheet: Sheet, key: tuple[int, int]) -> None:
    old = sheet.cells.pop(key, None)
    if old is not None and old.format:
        sheet.cells[key] = Cell("empty", None, old.format)  # clearing a value keeps its format


def _oriented(values: Any, major: str) -> list[list[Any]]:
    """Validate a values array and return it row-major."""
    values = [] if values is None else values
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise SheetsError(400, "Invalid values: expected a list of lists.")
    for row in values:
        for value in row:
            if value is not None and not isinstance(value, (str, int, float)):
                raise SheetsError(400, f"Invalid values: unsupported value {value!r}")
    if major == "COLUMNS":
        return [list(line) for line in zip_longest(*values)]
    return values


def _table_end(sheet: Sheet, r0: int, c0: int, c1: int) -> int:
    """The first row from r0 down with no value in columns c0..c1: where append writes."""
    filled = {r for (r, c), cell in sheet.cells.items()
              if r >= r0 and c0 <= c < c1 and cell.kind != "empty"}  # fmt: skip
    end = r0
    while end in filled:
        end += 1
    return end


def _overflow(grid: GridRange, height: int, width: int) -> str:
    """Where a write spills out of an explicit range ("" when it fits)."""
    if height > grid.r1 - grid.r0:
        return f"row [{grid.r1 + 1}]"
    if width > grid.c1 - grid.c0:
        return f"column [{col_letters(grid.c1)}]"
    return ""


def _rows_of(body: Mapping[str, Any]) -> list[list[Any]]:
    return _oriented(body.get("values"), body.get("majorDimension") or "ROWS")


def _extent(rows: list[list[Any]]) -> tuple[int, int]:
    return len(rows), max(map(len, rows), default=0)


def _first(query: Query, name: str) -> str:
    return (query.get(name) or [""])[0]


def _summary(title: str, r0: int, c0: int, rows: list[list[Any]]) -> dict[str, Any]:
    width = max(map(len, rows), default=0)
    if not width:
        return {"updatedRange": a1(title, r0, c0, r0 + 1, c0 + 1)}
    return {
        "updatedRange": a1(title, r0, c0, r0 + len(rows), c0 + width),
        "updatedRows": sum(1 for row in rows if row),
        "updatedColumns": width,
        "updatedCells": sum(map(len, rows)),
    }


def _shift(sheet: Sheet, axis: int, start: int, count: int) -> None:
    """Insert (count > 0) or delete (count < 0) rows (axis 0) or columns (axis 1) at start."""

    def moved(i: int) -> int | None:
        if i < start:
            return i
        return None if count < 0 and i < start - count else i + count

    cells = {}
    for key, cell in sheet.cells.items():
        new = moved(key[axis])
        if new is not None:
            cells[(new, key[1]) if axis == 0 else (key[0], new)] = cell
    sheet.cells = cells
    sizes = sheet.row_heights if axis == 0 else sheet.col_widths
    shifted = {moved(i): px for i, px in sizes.items() if moved(i) is not None}
    sizes.clear()
    sizes.update(shifted)
    if axis == 0:
        sheet.row_count += count
    else:
        sheet.col_count += count


def _resize(sheet: Sheet, rows: int, cols: int) -> None:
    if rows < sheet.row_count or cols < sheet.col_count:  # shrinking drops what falls outside
        sheet.cells = {k: v for k, v in sheet.cells.items() if k[0] < rows and k[1] < cols}
        sheet.row_heights = {r: px for r, px in sheet.row_heights.items() if r < rows}
        sheet.col_widths = {c: px for c, px in sheet.col_widths.items() if c < cols}
    sheet.row_count, sheet.col_count = rows, cols


def _clone(sheet: Sheet) -> Sheet:
    """A copy a batchUpdate can change freely: cells are immutable, containers are copied."""
    return replace(
        sheet,
        cells=dict(sheet.cells),
        row_heights=dict(sheet.row_heights),
        col_widths=dict(sheet.col_widths),
        extra=copy.deepcopy(sheet.extra),
    )


def _entered_value(value: Mapping[str, Any] | None) -> Parsed | None:
    """An ExtendedValue (numberValue, stringValue, boolValue, formulaValue) as a cell."""
    kinds = {"numberValue": "number", "stringValue": "string", "boolValue": "bool"}
    for name, raw in (value or {}).items():
        if name == "formulaValue":
            return "formula", raw, None
        if name in kinds:
            return kinds[name], round15(raw) if name == "numberValue" else raw, None
    return None


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    }


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> SimResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return SimResponse(status, {**JSON_HEADERS, **(headers or {})}, body)


def _fault_response(answer: Any) -> SimResponse:
    status, headers, *rest = (answer, {}) if isinstance(answer, int) else answer
    message = FAULT_MESSAGES.get(status) or HTTPStatus(status).phrase
    return _json_response(status, rest[0] if rest else _error_body(status, message), headers)


def _option(query: Query, name: str, allowed: tuple[str, ...]) -> str:
    value = _first(query, name) or allowed[0]
    if value not in allowed:
        raise SheetsError(400, f"Invalid value at '{name}': \"{value}\"")
    return value


def _input_option(value: str | None) -> str:
    if not value:
        raise SheetsError(400, "'valueInputOption' is required but not specified")
    if value not in INPUT_OPTIONS:
        raise SheetsError(400, f"Invalid value at 'value_input_option': \"{value}\"")
    return value


def _method_for(kind: str) -> str:
    if kind in ("metadata", "values_get", "values_batch_get"):
        return "GET"
    return "PUT" if kind == "values_update" else "POST"


def route(method: str, path: str) -> tuple[str, dict[str, str]]:
    """The endpoint kind of a request (for stats and dispatch) and its path parameters."""
    for name, regex in ROUTES:
        match = regex.fullmatch(path)
        if match:
            if name == "values":
                name = "values_update" if method == "PUT" else "values_get"
            return (name if method == _method_for(name) else "unknown"), match.groupdict()
    return "unknown", {}


# ---------------------------------------------------------------- the world


class SheetsWorld:
    """Every simulated spreadsheet behind one lock, with request stats and scripted faults."""

    def __init__(
        self,
        cell_limit: int = DEFAULT_CELL_LIMIT,
        require_auth: bool = False,
        error_rate: float = 0.0,
        latency_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.cell_limit = cell_limit
        self.require_auth = require_auth
        self.error_rate = error_rate
        self.latency_s = latency_s
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._gids = random.Random(seed + 1)
        self._scripts: list[tuple[str, re.Pattern[str], list[Any]]] = []
        self._stats = Stats()

    # -- helpers for tests (they bypass stats and faults)

    def create_spreadsheet(
        self, spreadsheet_id: str, sheet_titles: tuple[str, ...] = ("Sheet1",), title: str = "Test"
    ) -> Spreadsheet:
        """Create a spreadsheet whose first tab has gid 0, like a new Google spreadsheet."""
        with self._lock:
            book = Spreadsheet(spreadsheet_id, title)
            self.spreadsheets[spreadsheet_id] = book
            for i, name in enumerate(sheet_titles):
                self._new_sheet(book, name, DEFAULT_ROWS, DEFAULT_COLS, 0 if i == 0 else None)
            return book

    def add_sheet(
        self, spreadsheet_id: str, title: str, rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLS
    ) -> Sheet:
        """Add a tab, subject to the cell limit."""
        with self._lock:
            return self._new_sheet(self._book(spreadsheet_id), title, rows, cols)

    def set_values(
        self,
        spreadsheet_id: str,
        title: str,
        rows: list[list[Any]],
        start: str = "A1",
        input_option: str = "USER_ENTERED",
    ) -> dict[str, Any]:
        """Write rows from start, parsed exactly as a values.update would parse them."""
        query = {"valueInputOption": [input_option]}
        with self._lock:
            book = self._book(spreadsheet_id)
            return self._values_update(book, f"{_quoted(title)}!{start}", query, {"values": rows})

    def cell(self, spreadsheet_id: str, title: str, ref: str) -> Cell | None:
        """The stored cell at an A1 reference (a copy), or None when it has no value."""
        with self._lock:
            grid = parse_range(self._book(spreadsheet_id), f"{_quoted(title)}!{ref}")
            found = grid.sheet.cells.get((grid.r0, grid.c0))
            if found is None or found.kind == "empty":
                return None
            return found._replace(format=copy.deepcopy(found.format))

    def cell_format(self, spreadsheet_id: str, title: str, ref: str) -> dict[str, Any]:
        """The userEnteredFormat at an A1 reference, empty cells included."""
        with self._lock:
            grid = parse_range(self._book(spreadsheet_id), f"{_quoted(title)}!{ref}")
            found = grid.sheet.cells.get((grid.r0, grid.c0))
            return copy.deepcopy(found.format if found else {})

    def values(
        self, spreadsheet_id: str, title: str, render: str = "UNFORMATTED_VALUE"
    ) -> list[list[Any]]:
        """What values.get of the whole tab returns under ``values`` (trimmed; [] if empty)."""
        with self._lock:
            grid = parse_range(self._book(spreadsheet_id), _quoted(title))
            return read_grid(grid, render, "SERIAL_NUMBER")

    def row_heights(self, spreadsheet_id: str, title: str) -> dict[int, int]:
        """Row pixel sizes set through updateDimensionProperties, by 0-based row."""
        with self._lock:
            return dict(self.sheet(spreadsheet_id, title).row_heights)

    def sheet(self, spreadsheet_id: str, title: str) -> Sheet:
        """The live Sheet object for a tab (KeyError if absent)."""
        with self._lock:
            found = self._book(spreadsheet_id).find(title)
            if found is None:
                raise KeyError(title)
            return found

    # -- faults and stats

    def script(self, method: str, path_regex: str, answers: list[Any]) -> None:
        """Answer the next requests matching method ("*": any) and path regex with these.

        Each answer is "drop", a status, (status, headers) or (status, headers, json_body);
        they are used in order, before normal handling, then the path behaves normally.
        """
        with self._lock:
            self._scripts.append((method.upper(), re.compile(path_regex), list(answers)))

    @property
    def stats(self) -> Stats:
        """A consistent copy of the request counters."""
        with self._lock:
            return copy.deepcopy(self._stats)

    def reset_stats(self) -> None:
        """Zero the request counters and log."""
        with self._lock:
            self._stats = Stats()

    def _count(self, method: str, path: str, kind: str, size: int) -> None:
        stats = self._stats
        stats.requests += 1
        stats.reads += method == "GET"
        stats.writes += method != "GET" and kind != "token"
        stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
        stats.bytes_received += size
        stats.largest_request_body = max(stats.largest_request_body, size)
        stats.log.append((method, path, kind, size))

    def _fault(self, method: str, path: str, kind: str) -> Any:
        for wanted, regex, answers in self._scripts:
            if answers and wanted in ("*", method) and regex.search(path):
                return answers.pop(0)
        if kind != "token" and self.error_rate and self._rng.random() < self.error_rate:
            return self._rng.choice((500, 503))
        return None

    # -- HTTP core

    def handle(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> SimResponse:
        """Answer one HTTP request (raises DropConnection for a scripted drop)."""
        method, parts = method.upper(), urlsplit(url)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        kind, params = route(method, path)
        with self._lock:
            self._count(method, path, kind, len(body))
            answer = self._fault(method, path, kind)
        if self.latency_s:
            time.sleep(self.latency_s)
        if answer == "drop":
            raise DropConnection(f"{method} {path}")
        if answer is not None:
            return _fault_response(answer)
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        try:
            return self._dispatch(kind, params, query, lowered, body)
        except SheetsError as err:
            return _json_response(err.status, _error_body(err.status, err.message))

    def _dispatch(
        self,
        kind: str,
        params: dict[str, str],
        query: Query,
        headers: dict[str, str],
        body: bytes,
    ) -> SimResponse:
        if kind == "token":
            form = parse_qs(body.decode(errors="replace"))
            if "grant_type" not in form:
                return _json_response(400, {"error": "invalid_request"})
            return _json_response(200, TOKEN_BODY)
        if kind == "unknown":
            raise SheetsError(404, NOT_FOUND)
        if self.require_auth and not re.fullmatch(r"Bearer \S+", headers.get("authorization", "")):
            raise SheetsError(401, UNAUTHENTICATED)
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError as err:
            raise SheetsError(400, f"Invalid JSON payload received. {err}") from None
        with self._lock:
            book = self._book(params["sid"])
            result = self._HANDLERS[kind](self, book, params.get("range"), query, payload)
        return _json_response(200, result)  # answers hold fresh containers: encode unlocked

    def _book(self, spreadsheet_id: str) -> Spreadsheet:
        book = self.spreadsheets.get(spreadsheet_id)
        if book is None:
            raise SheetsError(404, NOT_FOUND)
        return book

    # -- endpoints: (book, range from the path, query, JSON body) -> JSON answer

    def _metadata(self, book: Spreadsheet, _: Any, query: Query, __: Any) -> Any:
        result: dict[str, Any] = {
            "spreadsheetId": book.spreadsheet_id,
            "properties": {"title": book.title, "locale": "en_US", "timeZone": "Etc/GMT"},
            "sheets": [{"properties": sheet.properties()} for sheet in book.sheets],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.spreadsheet_id}/edit",
        }
        if query.get("fields"):  # loosely: keep the top-level keys the mask names
            keep = {path[0] for path in parse_mask(query["fields"][0]) if path}
            result = {k: v for k, v in result.items() if k in keep or "*" in keep}
        return result

    def _values_get(self, book: Spreadsheet, text: str, query: Query, _: Any) -> Any:
        return _value_range(parse_range(book, text), query)

    def _values_batch_get(self, book: Spreadsheet, _: Any, query: Query, __: Any) -> Any:
        grids = [parse_range(book, text) for text in query.get("ranges", [])]
        ranges = [_value_range(grid, query) for grid in grids]
        return {"spreadsheetId": book.spreadsheet_id, "valueRanges": ranges}

    def _plan(
        self, book: Spreadsheet, text: str, body: Mapping[str, Any]
    ) -> tuple[GridRange, list[list[Any]]]:
        """Resolve one write and check it fits its range and the grid before anything changes."""
        grid, rows = parse_range(book, text), _rows_of(body)
        (height, width), sheet = _extent(rows), grid.sheet
        beyond = _overflow(grid, height, width) if grid.bounded else ""
        if beyond:
            where = a1(sheet.title, grid.r0, grid.c0, grid.r1, grid.c1)
            message = f"Requested writing within range [{where}], but tried writing to {beyond}"
            raise SheetsError(400, message)
        if grid.r0 + height > sheet.row_count or grid.c0 + width > sheet.col_count:
            target = a1(sheet.title, grid.r0, grid.c0, grid.r0 + height, grid.c0 + width, True)
            raise SheetsError(400, _grid_message(target, sheet))
        return grid, rows

    def _values_update(self, book: Spreadsheet, text: str, query: Query, body: Any) -> Any:
        option = _input_option(_first(query, "valueInputOption"))
        grid, rows = self._plan(book, text, body)
        _write(grid.sheet, grid.r0, grid.c0, rows, option)
        summary = _summary(grid.sheet.title, grid.r0, grid.c0, rows)
        return {"spreadsheetId": book.spreadsheet_id, **summary}

    def _values_batch_update(self, book: Spreadsheet, _: Any, __: Query, body: Any) -> Any:
        option = _input_option(body.get("valueInputOption"))
        plans = [self._plan(book, item.get("range", ""), item) for item in body.get("data", [])]
        responses = []
        for grid, rows in plans:  # all validated first: one bad range writes nothing
            _write(grid.sheet, grid.r0, grid.c0, rows, option)
            summary = _summary(grid.sheet.title, grid.r0, grid.c0, rows)
            responses.append({"spreadsheetId": book.spreadsheet_id, **summary})
        result = {"spreadsheetId": book.spreadsheet_id}
        for name in ("Rows", "Columns", "Cells"):
            result[f"totalUpdated{name}"] = sum(r.get(f"updated{name}", 0) for r in responses)
        result["totalUpdatedSheets"] = len({grid.sheet.sheet_id for grid, _ in plans})
        return {**result, "responses": responses}

    def _values_append(self, book: Spreadsheet, text: str, query: Query, body: Any) -> Any:
        option = _input_option(_first(query, "valueInputOption"))
        grid, rows = parse_range(book, text, check_grid=False), _rows_of(body)
        (height, width), sheet = _extent(rows), grid.sheet
        right = grid.c1 if grid.bounded else sheet.col_count  # a single cell: the whole table
        start = _table_end(sheet, grid.r0, grid.c0, right)
        insert = _first(query, "insertDataOption") == "INSERT_ROWS"
        rows_needed = sheet.row_count + height if insert else max(sheet.row_count, start + height)
        cols_needed = max(sheet.col_count, grid.c0 + width)
        self._check_cells(book, sheet, rows_needed, cols_needed)  # append grows the grid
        if insert and start < sheet.row_count:
            _shift(sheet, 0, start, height)
        _resize(sheet, rows_needed, cols_needed)
        _write(sheet, start, grid.c0, rows, option)
        result: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id}
        if start > grid.r0:
            result["tableRange"] = a1(sheet.title, grid.r0, grid.c0, start, max(right, grid.c0 + 1))
        summary = _summary(sheet.title, start, grid.c0, rows)
        return {**result, "updates": {"spreadsheetId": book.spreadsheet_id, **summary}}

    def _values_clear(self, book: Spreadsheet, text: str, _: Any, __: Any) -> Any:
        grid = parse_range(book, text)
        return {"spreadsheetId": book.spreadsheet_id, "clearedRange": _clear(grid)}

    def _values_batch_clear(self, book: Spreadsheet, _: Any, __: Any, body: Any) -> Any:
        grids = [parse_range(book, text) for text in body.get("ranges", [])]
        return {"spreadsheetId": book.spreadsheet_id, "clearedRanges": [_clear(g) for g in grids]}

    def _batch_update(self, book: Spreadsheet, _: Any, __: Any, body: Any) -> Any:
        """Apply requests to a copy and keep it only if every request succeeds (atomic)."""
        draft = Spreadsheet(book.spreadsheet_id, book.title, [_clone(s) for s in book.sheets])
        requests = body.get("requests") or []
        replies = [self._apply(draft, i, request) for i, request in enumerate(requests)]
        originals = {sheet.sheet_id: sheet for sheet in book.sheets}
        for i, sheet in enumerate(draft.sheets):
            if sheet.sheet_id in originals:  # keep the Sheet objects tests already hold
                originals[sheet.sheet_id].__dict__.update(sheet.__dict__)
                draft.sheets[i] = originals[sheet.sheet_id]
        book.sheets = draft.sheets
        return {"spreadsheetId": book.spreadsheet_id, "replies": replies}

    def _apply(self, draft: Spreadsheet, i: int, request: Any) -> Any:
        """One batchUpdate request; errors are prefixed "Invalid requests[i].kind:" as Google's."""
        name = next(iter(request), "") if isinstance(request, dict) and len(request) == 1 else ""
        if name not in self._REQUESTS:
            message = f"Invalid JSON payload received. Unknown name \"{name}\" at 'requests[{i}]'."
            raise SheetsError(400, message)
        try:
            return self._REQUESTS[name](self, draft, request[name]) or {}
        except SheetsError as err:
            raise SheetsError(err.status, f"Invalid requests[{i}].{name}: {err.message}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SheetsError(400, f"Invalid requests[{i}].{name}: {err!r}") from None

    # -- spreadsheets.batchUpdate requests: (draft book, request body) -> reply or None

    def _check_cells(self, book: Spreadsheet, sheet: Sheet | None, rows: int, cols: int) -> None:
        if rows < 1 or cols < 1:
            raise SheetsError(400, "A sheet must keep at least one row and one column.")
        others = sum(s.row_count * s.col_count for s in book.sheets if s is not sheet)
        if others + rows * cols > self.cell_limit:
            raise SheetsError(400, CELL_LIMIT_MESSAGE.format(limit=self.cell_limit))

    def _new_sheet(
        self,
        book: Spreadsheet,
        title: str,
        rows: int,
        cols: int,
        gid: int | None = None,
        index: int | None = None,
    ) -> Sheet:
        if book.find(title):
            raise SheetsError(400, DUPLICATE_TITLE.format(title=title))
        self._check_cells(book, None, rows, cols)
        gid = self._gids.randrange(1, 2**31 - 1) if gid is None else gid
        if any(s.sheet_id == gid for s in book.sheets):
            raise SheetsError(400, f"A sheet with the id {gid} already exists.")
        sheet = Sheet(gid, title, 0, rows, cols)
        book.sheets.insert(len(book.sheets) if index is None else index, sheet)
        _reindex(book)
        return sheet

    def _add_sheet(self, book: Spreadsheet, args: Mapping[str, Any]) -> Any:
        props = args.get("properties", {})
        grid = props.get("gridProperties", {})
        title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
        rows, cols = grid.get("rowCount", DEFAULT_ROWS), grid.get("columnCount", DEFAULT_COLS)
        sheet = self._new_sheet(book, title, rows, cols, props.get("sheetId"), props.get("index"))
        return {"addSheet": {"properties": sheet.properties()}}

    def _delete_sheet(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        sheet = book.by_id(args.get("sheetId"))
        if len(book.sheets) == 1:
            raise SheetsError(400, "You can't remove all the sheets in a document.")
        book.sheets.remove(sheet)
        _reindex(book)

    def _update_sheet_properties(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        given = args.get("properties", {})
        sheet, paths = book.by_id(given.get("sheetId")), _required_mask(args)
        props = apply_mask(sheet.properties(), given, paths)
        grid = props.pop("gridProperties", {})
        rows, cols = grid.pop("rowCount", sheet.row_count), grid.pop("columnCount", sheet.col_count)
        # Sheets applies rowCount first and checks the cell limit before applying columnCount
        # (robin900/gspread-dataframe#37, PR #38), so check both steps.
        self._check_cells(book, sheet, rows, sheet.col_count)
        self._check_cells(book, sheet, rows, cols)
        title = props.pop("title", sheet.title)
        if title != sheet.title and book.find(title):
            raise SheetsError(400, DUPLICATE_TITLE.format(title=title))
        _resize(sheet, rows, cols)
        sheet.title, index = title, props.pop("index", sheet.index)
        book.sheets.remove(sheet)
        book.sheets.insert(min(index, len(book.sheets)), sheet)
        _reindex(book)
        for key in ("sheetId", "sheetType"):
            props.pop(key, None)
        sheet.extra = {**props, "gridProperties": grid} if grid else props

    def _append_dimension(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        sheet, length = book.by_id(args.get("sheetId")), int(args["length"])
        rows = sheet.row_count + (length if args.get("dimension") == "ROWS" else 0)
        cols = sheet.col_count + (length if args.get("dimension") == "COLUMNS" else 0)
        self._check_cells(book, sheet, rows, cols)
        _resize(sheet, rows, cols)

    def _insert_dimension(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        sheet, axis, start, end = _dimension(book, args.get("range", {}), allow_end=True)
        rows = sheet.row_count + (end - start if axis == 0 else 0)
        self._check_cells(book, sheet, rows, sheet.col_count + (end - start if axis == 1 else 0))
        _shift(sheet, axis, start, end - start)

    def _delete_dimension(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        sheet, axis, start, end = _dimension(book, args.get("range", {}))
        if end - start >= (sheet.row_count, sheet.col_count)[axis]:
            raise SheetsError(
                400, f"You can't delete all the {('rows', 'columns')[axis]} on the sheet."
            )
        _shift(sheet, axis, start, start - end)

    def _repeat_cell(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        grid, paths = _grid_range(book, args.get("range", {})), _required_mask(args)
        cell_data = args.get("cell", {})
        if any(p[0] in ("userEnteredValue", "*") for p in paths):  # a "*" mask wipes values too
            _repeat_value(grid, _entered_value(cell_data.get("userEnteredValue")))
        format_paths = tuple(p[1:] for p in paths if p[0] == "userEnteredFormat")
        format_paths += ((),) if ("*",) in paths else ()
        if format_paths:
            _repeat_format(grid, cell_data.get("userEnteredFormat", {}), format_paths)

    def _update_dimension_properties(self, book: Spreadsheet, args: Mapping[str, Any]) -> None:
        sheet, axis, start, end = _dimension(book, args.get("range", {}))
        if _path_covered(("pixelSize",), tuple(parse_mask(args.get("fields", "")))):
            size = args.get("properties", {}).get("pixelSize")
            sizes = sheet.row_heights if axis == 0 else sheet.col_widths
            for i in range(start, end):
                if size is None:
                    sizes.pop(i, None)
                else:
                    sizes[i] = int(size)

    _HANDLERS: dict[str, Callable[..., Any]] = {
        "metadata": _metadata,
        "values_get": _values_get,
        "values_batch_get": _values_batch_get,
        "values_update": _values_update,
        "values_batch_update": _values_batch_update,
        "values_append": _values_append,
        "values_clear": _values_clear,
        "values_batch_clear": _values_batch_clear,
        "batch_update": _batch_update,
    }
    _REQUESTS: dict[str, Callable[..., Any]] = {
        "addSheet": _add_sheet,
        "deleteSheet": _delete_sheet,
        "updateSheetProperties": _update_sheet_properties,
        "appendDimension": _append_dimension,
        "insertDimension": _insert_dimension,
        "deleteDimension": _delete_dimension,
        "repeatCell": _repeat_cell,
        "updateDimensionProperties": _update_dimension_properties,
    }


def _quoted(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _reindex(book: Spreadsheet) -> None:
    for i, sheet in enumerate(book.sheets):
        sheet.index = i


def _dimension(
    book: Spreadsheet, rng: Mapping[str, Any], allow_end: bool = False
) -> tuple[Sheet, int, int, int]:
    """A DimensionRange as (sheet, axis: 0 rows or 1 columns, start, end), checked."""
    sheet = book.by_id(rng.get("sheetId"))
    if rng.get("dimension") not in ("ROWS", "COLUMNS"):
        raise SheetsError(400, "dimension must be ROWS or COLUMNS")
    axis = 0 if rng["dimension"] == "ROWS" else 1
    size = (sheet.row_count, sheet.col_count)[axis]
    start, end = rng.get("startIndex", 0), rng.get("endIndex", size)
    if not 0 <= start < end or (end > size and not allow_end) or start > size:
        raise SheetsError(400, f"Invalid dimension range [{start}, {end}) for a size of {size}.")
    return sheet, axis, start, end


def _required_mask(args: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    paths = tuple(parse_mask(args.get("fields", "")))
    if not paths:
        raise SheetsError(400, "At least one field must be updated, but none was specified.")
    return paths


def _grid_range(book: Spreadsheet, rng: Mapping[str, Any]) -> GridRange:
    """A GridRange object (sheetId, optional start/end indexes) checked against the grid."""
    sheet = book.by_id(rng.get("sheetId"))
    r0, c0 = rng.get("startRowIndex", 0), rng.get("startColumnIndex", 0)
    r1, c1 = rng.get("endRowIndex", sheet.row_count), rng.get("endColumnIndex", sheet.col_count)
    if not (0 <= r0 <= r1 <= sheet.row_count and 0 <= c0 <= c1 <= sheet.col_count):
        raise SheetsError(400, _grid_message(a1(sheet.title, r0, c0, r1, c1, quote=True), sheet))
    return GridRange(sheet, r0, c0, r1, c1, True, "")


def _repeat_value(grid: GridRange, entered: Parsed | None) -> None:
    if entered is None:
        _clear(grid)
        return
    for key in ((r, c) for r in range(grid.r0, grid.r1) for c in range(grid.c0, grid.c1)):
        old = grid.sheet.cells.get(key)
        grid.sheet.cells[key] = Cell(entered[0], entered[1], old.format if old else {})


def _repeat_format(
    grid: GridRange, fmt: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]
) -> None:
    """Apply a masked format to the stored cells of a range (formats are shared, not mutated)."""
    memo: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}  # holds old dicts: ids stay unique
    for key in _cells_in(grid.sheet, grid.r0, grid.c0, grid.r1, grid.c1):
        old = grid.sheet.cells[key]
        if id(old.format) not in memo:
            memo[id(old.format)] = (old.format, apply_mask(old.format, fmt, paths))
        grid.sheet.cells[key] = Cell(old.kind, old.value, memo[id(old.format)][1])


def _clear(grid: GridRange) -> str:
    for key in _cells_in(grid.sheet, grid.r0, grid.c0, grid.r1, grid.c1):
        _clear_cell(grid.sheet, key)
    return a1(grid.sheet.title, grid.r0, grid.c0, grid.r1, grid.c1)


def _value_range(grid: GridRange, query: Query) -> dict[str, Any]:
    option = _option(query, "valueRenderOption", RENDER_OPTIONS)
    dates = _option(query, "dateTimeRenderOption", ("SERIAL_NUMBER", "FORMATTED_STRING"))
    major = _option(query, "majorDimension", ("ROWS", "COLUMNS"))
    result: dict[str, Any] = {
        "range": a1(grid.sheet.title, grid.r0, grid.c0, grid.r1, grid.c1),
        "majorDimension": major,
    }
    values = read_grid(grid, option, dates, major)
    if values:  # an empty range has no "values" key at all
        result["values"] = values
    return result


# ---------------------------------------------------------------- ways in: HTTP server, responses


serve = sim_http.serve
SimServer = sim_http.SimServer


def register_with_responses(
    rsps: Any, world: SheetsWorld, base_url: str = SHEETS_BASE_URL, token_url: str = TOKEN_URL
) -> None:
    """Route a ``responses.RequestsMock`` to the world; a scripted drop raises ConnectionError."""
    sim_http.register_with_responses(rsps, world, base_url, extra_urls=(("POST", token_url),))
