"""Local workbook sink: the accounts and data sheets of a .xlsx file, kept like the Google sheet."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import stat
import uuid
import zipfile
from collections.abc import Iterator
from copy import copy
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
from openpyxl.cell.cell import Cell
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.formula import ArrayFormula
from openpyxl.worksheet.worksheet import Worksheet

from sink import ACCOUNTS_SHEET, DATA_SHEET, CellUpdate, SinkError, column_blocks, grid_to_frame

log = logging.getLogger(__name__)

ROW_HEIGHT_PT = 15.75  # 21 px, the row height of the Google sheet
# XML 1.0 cannot hold these control characters at all; OOXML writes them as _xHHHH_ escapes.
_ILLEGAL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check_not_open(path: Path) -> None:
    """Refuse a workbook another program has open: its next save would undo ours."""
    # LibreOffice's lock file; Excel's owner file, "~$" before the name or over its first two
    # characters (accounts differ).
    for name in dict.fromkeys([f".~lock.{path.name}#", f"~${path.name}", f"~${path.name[2:]}"]):
        if path.with_name(name).exists():
            raise SinkError(
                f"workbook {path} is open in another program (lock file {name}): close it and "
                "run again (or delete the lock file if no program has it open)"
            )


def locked_error(path: Path) -> SinkError:
    """The error for a workbook the system will not let us read or replace."""
    return SinkError(
        f"workbook {path} cannot be read or replaced (permission denied): close the program "
        "that has it open, or check the file's and folder's permissions"
    )


def keep_carriage_returns(xlsx: bytes) -> bytes:
    """Write CR in the sheets' text as &#13;: openpyxl writes it raw and XML readers turn it
    into LF, so "a\\r\\nb" would come back as "a\\nb"."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as source:
        sheets = [name for name in source.namelist() if name.startswith("xl/worksheets/")]
        changed = {name: data for name in sheets if b"\r" in (data := source.read(name))}
        if not changed:
            return xlsx
        result = io.BytesIO()
        with zipfile.ZipFile(result, "w", zipfile.ZIP_DEFLATED) as target:
            for info in source.infolist():
                data = changed.get(info.filename)
                data = source.read(info) if data is None else data.replace(b"\r", b"&#13;")
                target.writestr(info, data)
    return result.getvalue()


def save_atomically(workbook: Workbook, path: Path) -> None:
    """Write a temp file in the same folder, then replace: a failed save leaves the old file."""
    check_not_open(path)
    try:
        data = io.BytesIO()
        workbook.save(data)
        xlsx = keep_carriage_returns(data.getvalue())
    except Exception as error:  # openpyxl raises many types while serialising
        raise SinkError(f"cannot save workbook {path} ({type(error).__name__}: {error})") from None
    temp_name = ""
    try:
        # Created like any new file (0666 minus the umask), then given the old file's mode.
        temp_name = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
        descriptor = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as temp_file:
            temp_file.write(xlsx)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temp_name, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temp_name, path)
    except PermissionError:
        raise locked_error(path) from None
    except OSError as error:
        raise SinkError(
            f"cannot save workbook {path} ({error.strerror or error}): the file was not changed"
        ) from None
    finally:
        if temp_name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)


def stored_value(value: Any) -> Any:
    """A cell as the Sheets API returns it: empty is "", an array formula its "=..." text."""
    if value is None:
        return ""
    return value.text if isinstance(value, ArrayFormula) else value


def sheet_grid(worksheet: Worksheet) -> list[list[Any]]:
    """The sheet's values as rows, trailing blanks trimmed like the Sheets API does."""
    grid: list[list[Any]] = []
    for row in worksheet.iter_rows(values_only=True):
        cells = [stored_value(value) for value in row]
        while cells and cells[-1] == "":
            cells.pop()
        grid.append(cells)
    while grid and not grid[-1]:
        grid.pop()
    return grid


def cell_value(value: Any) -> Any:
    """A frame value as an openpyxl value: missing is None, numpy scalars become Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return _ILLEGAL_CHARACTERS.sub(lambda match: f"_x{ord(match.group()):04X}_", value)
    if isinstance(value, bool | int | float):
        return value
    return str(value)


def put(cell: Cell, value: Any) -> None:
    """Write one cell; text always stays text, so "=..." never becomes a formula."""
    cell.value = cell_value(value)
    if isinstance(cell.value, str):
        cell.data_type = "s"  # openpyxl made "=..." a formula ("f") on assignment


def format_data_sheet(worksheet: Worksheet, rows: int, columns: int) -> None:
    """Wrapping off on the data range (other alignment kept), every used row 15.75 pt."""
    # max_col=0 would mean "every column" to openpyxl
    for row in worksheet.iter_rows(min_row=1, max_row=rows, max_col=columns) if columns else []:
        for cell in row:
            if cell.has_style and cell.alignment.wrap_text:
                alignment = copy(cell.alignment)
                alignment.wrap_text = False
                cell.alignment = alignment
    for row_number in range(1, max(rows, worksheet.max_row) + 1):
        worksheet.row_dimensions[row_number].height = ROW_HEIGHT_PT


class WorkbookSink:
    """Reads and writes a local .xlsx; loads it once and again only when the file changed."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self.requests_made = 0  # file loads and saves, the workbook's "requests"
        self._workbook: Workbook | None = None
        self._loaded: tuple[int, int, int] | None = None

    def _file_stamp(self) -> tuple[int, int, int]:
        """Inode, mtime and size: another program's save changes at least one of them."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise SinkError(
                f"workbook {self.path} not found: create it with a sheet {ACCOUNTS_SHEET!r} "
                "(columns account_name, access_token) or point THREADS_WORKBOOK elsewhere"
            ) from None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _load(self) -> Workbook:
        """The workbook, read from disk on first use and whenever the file has changed."""
        check_not_open(self.path)
        stamp = self._file_stamp()
        if self._workbook is not None and stamp == self._loaded:
            return self._workbook
        self._workbook = None
        try:
            workbook = openpyxl.load_workbook(self.path)
        except PermissionError:
            raise locked_error(self.path) from None
        except Exception as error:  # zipfile, XML and openpyxl errors: the file is unusable
            raise SinkError(
                f"workbook {self.path} is not a readable .xlsx ({type(error).__name__}: {error}): "
                "restore it from a backup or point THREADS_WORKBOOK elsewhere"
            ) from None
        self.requests_made += 1
        self._workbook, self._loaded = workbook, stamp
        return workbook

    @contextlib.contextmanager
    def _changing(self) -> Iterator[Workbook]:
        """Change the loaded workbook and save it; on any failure forget the changed copy."""
        workbook = self._load()
        try:
            yield workbook
            save_atomically(workbook, self.path)
        except BaseException as error:
            self._workbook = None  # the file on disk is unchanged: read it again next time
            if isinstance(error, Exception) and not isinstance(error, SinkError):
                # e.g. a merged cell where a post value goes: say so in one line, like the rest
                raise SinkError(
                    f"cannot write workbook {self.path} ({type(error).__name__}: {error}): "
                    "the file was not changed"
                ) from None
            raise
        self.requests_made += 1
        self._loaded = self._file_stamp()

    def read_accounts(self) -> list[list[Any]]:
        """The accounts sheet as rows; a missing file or sheet is an error the user must fix."""
        workbook = self._load()
        if ACCOUNTS_SHEET not in workbook.sheetnames:
            raise SinkError(
                f"workbook {self.path} has no sheet {ACCOUNTS_SHEET!r}: add it with the columns "
                "account_name and access_token"
            )
        return sheet_grid(workbook[ACCOUNTS_SHEET])

    def read_posts(self) -> pd.DataFrame:
        """The data sheet as a DataFrame in sheet order, blank rows included."""
        workbook = self._load()
        if DATA_SHEET not in workbook.sheetnames:
            return grid_to_frame([])
        return grid_to_frame(sheet_grid(workbook[DATA_SHEET]))

    def write_posts(
        self,
        frame: pd.DataFrame,
        owned: list[str],
        rows: list[tuple[int, int]] | None = None,
        header: bool = True,
    ) -> None:
        """Write the owned columns of the row ranges (all rows by default), and their header
        when asked; format, then save."""
        ranges = [(0, len(frame))] if rows is None else rows
        with self._changing() as workbook:
            worksheet = self._data_sheet(workbook)
            for first_column, names in column_blocks(frame, owned):
                for column, name in enumerate(names, start=first_column):
                    if header:
                        put(worksheet.cell(1, column), name)
                    for start, end in ranges:
                        values = frame[name].iloc[start:end].tolist()
                        for row, value in enumerate(values, start=start + 2):
                            put(worksheet.cell(row, column), value)
            format_data_sheet(worksheet, len(frame) + 1, len(frame.columns))
        log.debug("wrote %d row ranges to %s", len(ranges), self.path)

    def format_posts(self, frame: pd.DataFrame) -> None:
        """Wrapping off and rows 15.75 pt (21 px) on the data sheet, then save."""
        with self._changing() as workbook:
            format_data_sheet(self._data_sheet(workbook), len(frame) + 1, len(frame.columns))

    @staticmethod
    def _data_sheet(workbook: Workbook) -> Worksheet:
        """The data sheet, created when missing."""
        if DATA_SHEET not in workbook.sheetnames:
            return workbook.create_sheet(DATA_SHEET)
        return workbook[DATA_SHEET]

    def write_account_cells(self, updates: list[CellUpdate]) -> None:
        """Write single cells of the accounts sheet as text, and nothing else."""
        if not updates:
            return
        with self._changing() as workbook:
            worksheet = workbook[ACCOUNTS_SHEET]
            for update in updates:
                put(worksheet.cell(update.row, update.column), str(update.value))
