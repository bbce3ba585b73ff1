"""What a sink (Google Sheets or a local workbook) offers the sync, and table helpers both share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

ACCOUNTS_SHEET = "accounts_threads"
DATA_SHEET = "Data_Po_kagdomy_posty"
# Google recommends about 2 MB per request; larger writes are split by rows.
WRITE_CHUNK_BYTES = 2_000_000
# JSON sends non-ASCII characters as \uXXXX: six bytes each.
_NON_ASCII = r"[^\x00-\x7f]"


class SinkError(Exception):
    """Reading or writing the sheet failed; the message says what to do."""


@dataclass(frozen=True)
class CellUpdate:
    """One cell of the accounts sheet to write (1-based row and column), as text."""

    row: int
    column: int
    value: str


class Sink(Protocol):
    """Where accounts come from and posts go to; the merge does not know which one it is."""

    requests_made: int

    def read_accounts(self) -> list[list[Any]]:
        """The accounts sheet, header first, as a list of rows."""
        ...

    def read_posts(self) -> pd.DataFrame:
        """The data sheet in sheet order (blank rows kept), header names as columns."""
        ...

    def write_posts(
        self,
        frame: pd.DataFrame,
        owned: list[str],
        rows: list[tuple[int, int]] | None = None,
        header: bool = True,
    ) -> None:
        """Write the owned columns of the frame's row ranges [start, end) (all rows when None),
        and their header when asked; then format the sheet."""
        ...

    def format_posts(self, frame: pd.DataFrame) -> None:
        """Format the data sheet for the frame's size (wrapping off, rows 21 px)."""
        ...

    def write_account_cells(self, updates: list[CellUpdate]) -> None:
        """Write single cells of the accounts sheet and nothing else."""
        ...


def column_names(header: list[Any], width: int) -> list[str]:
    """Unique column names for a sheet's header; blank or repeated headers get placeholders.

    A placeholder can never equal an owned column, so such columns are never written.
    """
    names: list[str] = []
    for position in range(width):
        raw = header[position] if position < len(header) else None
        name = "" if raw is None else str(raw).strip()
        if not name or name in names:
            name = f"__column_{position + 1}"
        names.append(name)
    return names


def grid_to_frame(grid: list[list[Any]]) -> pd.DataFrame:
    """Rows of cells (header first) to an object DataFrame; "" becomes missing, nothing else does.

    No text is parsed: "NA", "null" and "0012" stay strings, unlike pandas' CSV readers.
    """
    if not grid:
        return pd.DataFrame()
    width = max(len(row) for row in grid)
    rows = [
        [None if cell == "" else cell for cell in row] + [None] * (width - len(row))
        for row in grid[1:]
    ]
    return pd.DataFrame(rows, columns=column_names(grid[0], width), dtype=object)


def column_blocks(frame: pd.DataFrame, owned: list[str]) -> Iterator[tuple[int, list[str]]]:
    """Runs of adjacent owned columns as (1-based first column, names): analysts' columns
    between them are skipped, so their cells are never written."""
    block: list[str] = []
    start = 0
    for position, name in enumerate(frame.columns, start=1):
        if name in owned:
            if not block:
                start = position
            block.append(name)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def estimated_row_bytes(frame: pd.DataFrame) -> pd.Series:
    """Roughly how many bytes each row adds to a JSON write request."""
    sizes = pd.Series(8 * len(frame.columns), index=frame.index, dtype="int64")
    for name in frame.columns:
        text = frame[name].astype("string")
        sizes += text.str.len().fillna(0).astype("int64")
        sizes += 5 * text.str.count(_NON_ASCII).fillna(0).astype("int64")
    return sizes


def row_chunks(
    frame: pd.DataFrame, first_sheet_row: int, limit_bytes: int | None = None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Split rows that start at first_sheet_row into chunks of about limit_bytes; yields
    (1-based sheet row, chunk)."""
    if frame.empty:
        return
    chunk_numbers = estimated_row_bytes(frame).cumsum() // (limit_bytes or WRITE_CHUNK_BYTES)
    sheet_row = first_sheet_row
    for _, chunk in frame.groupby(chunk_numbers.to_numpy(), sort=True):
        yield sheet_row, chunk
        sheet_row += len(chunk)
