"""Google Sheets sink: reads the accounts and data sheets, writes only the tool's own cells."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import gspread
import pandas as pd
import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.service_account import Credentials
from gspread_dataframe import set_with_dataframe

import sheet_format
from http_session import mount_retries
from logs import redact
from sink import (
    ACCOUNTS_SHEET,
    DATA_SHEET,
    CellUpdate,
    SinkError,
    column_blocks,
    grid_to_frame,
    row_chunks,
)

SHEETS_SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
GOOGLE_SHEETS_URL = "https://sheets.googleapis.com"
SHEETS_TIMEOUT_S = 120.0
SHEETS_BACKOFF_FACTOR_S = 2.0  # 429 means the per-minute quota: wait 4, 8, 16, 32 s
MAX_CELLS = 10_000_000  # per spreadsheet, all tabs together
NEW_SHEET_ROWS, NEW_SHEET_COLUMNS = 1000, 26
GRID_ROW_STEP = 1000
# Read strings and numbers as stored; dates analysts typed come back as they see them.
READ_PARAMS = {"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "FORMATTED_STRING"}


class SheetsSession(AuthorizedSession):
    """An authorised session that counts requests and may talk to another endpoint (tests)."""

    def __init__(self, credentials: Any, base_url: str = "") -> None:
        super().__init__(credentials)
        self.base_url = base_url.rstrip("/")
        self.requests_made = 0
        self._count_lock = threading.Lock()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send one request, redirected to base_url when one is configured."""
        if self.base_url and url.startswith(GOOGLE_SHEETS_URL):
            url = self.base_url + url[len(GOOGLE_SHEETS_URL) :]
        with self._count_lock:
            self.requests_made += 1
        return super().request(method, url, *args, **kwargs)


def open_client(service_account_info: dict[str, Any], base_url: str = "") -> gspread.Client:
    """A gspread client on a session with bounded retries and a timeout on every call."""
    credentials = Credentials.from_service_account_info(service_account_info, scopes=SHEETS_SCOPES)
    session = SheetsSession(credentials, base_url)
    mount_retries(session, pool_size=4, backoff_factor=SHEETS_BACKOFF_FACTOR_S)
    client = gspread.Client(auth=credentials, session=session)
    client.set_timeout(SHEETS_TIMEOUT_S)
    return client


def describe_error(error: Exception, client_email: str = "") -> str:
    """One line for a Sheets failure that says what to do."""
    # gspread re-raises 403 and 404 of open_by_key as PermissionError / SpreadsheetNotFound.
    if isinstance(error.__cause__, gspread.exceptions.APIError):
        error = error.__cause__
    if isinstance(error, gspread.exceptions.APIError):
        status = error.response.status_code
        message = f"Google Sheets answered {status}: {error.error.get('message', '')}"
        if status in (403, 404):
            share = f" with {client_email}" if client_email else " with the service account"
            message += f" (check ID_GOOGLE_TABLE and share the spreadsheet{share} as Editor)"
        return redact(message)
    if isinstance(error, requests.RequestException | OSError):
        return redact(f"could not reach Google Sheets: {type(error).__name__}: {error}")
    # google-auth's RefreshError: the key was refused by Google's token endpoint.
    return redact(f"Google refused the service account key: {error}")


class GrownWorksheet:
    """A worksheet whose resize() sends nothing when the grid is big enough already.

    gspread-dataframe asks for a resize before every write; the grid is grown once, up front
    (_ensure_grid), so those requests would only spend the per-minute write quota.
    """

    def __init__(self, worksheet: gspread.Worksheet) -> None:
        self._worksheet = worksheet

    def __getattr__(self, name: str) -> Any:
        return getattr(self._worksheet, name)

    def resize(self, rows: int | None = None, cols: int | None = None) -> Any:
        """Grow the grid only when it is smaller than asked."""
        if (rows or 0) <= self._worksheet.row_count and (cols or 0) <= self._worksheet.col_count:
            return None
        return self._worksheet.resize(rows, cols)


def write_block(
    worksheet: GrownWorksheet, block: pd.DataFrame, row: int, column: int, header: bool
) -> None:
    """One values.update of a block of cells through gspread-dataframe.

    string_escaping="full" prefixes every text with ', so Sheets keeps it as text: ids keep
    all digits, "=..." never becomes a formula, "NA", "TRUE" and "0012" stay as posted.
    Numbers are sent as numbers, missing values as empty cells.
    """
    set_with_dataframe(
        worksheet,
        block,
        row=row,
        col=column,
        include_column_header=header,
        string_escaping="full",
    )


class GoogleSheetsSink:
    """Reads and writes one spreadsheet through gspread; counts every request it sends."""

    def __init__(self, client: gspread.Client, spreadsheet_id: str, client_email: str = "") -> None:
        self.client = client
        self.spreadsheet_id = spreadsheet_id
        self.client_email = client_email
        self._spreadsheet: gspread.Spreadsheet | None = None
        self._worksheets: dict[str, gspread.Worksheet] = {}

    @property
    def requests_made(self) -> int:
        """Sheets requests sent so far by this sink's session."""
        return getattr(self.client.http_client.session, "requests_made", 0)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn any library error into a one-line SinkError."""
        try:
            yield
        except SinkError:
            raise
        except Exception as error:  # gspread, requests and google-auth all raise their own
            raise SinkError(f"{doing}: {describe_error(error, self.client_email)}") from None

    def _open(self) -> gspread.Spreadsheet:
        """Open the spreadsheet and list its tabs (two requests, once per run)."""
        if self._spreadsheet is None:
            with self._errors("cannot open the spreadsheet"):
                self._spreadsheet = self.client.open_by_key(self.spreadsheet_id)
                self._worksheets = {ws.title: ws for ws in self._spreadsheet.worksheets()}
        return self._spreadsheet

    def _read_grid(self, title: str) -> list[list[Any]]:
        """All values of one tab as a list of rows (trailing blanks trimmed by the API)."""
        spreadsheet = self._open()
        if title not in self._worksheets:
            return []
        with self._errors(f"cannot read sheet {title!r}"):
            answer = spreadsheet.values_get(gspread.utils.absolute_range_name(title), READ_PARAMS)
        return answer.get("values", [])

    def read_accounts(self) -> list[list[Any]]:
        """The accounts sheet as rows; a missing sheet is an error the user must fix."""
        self._open()
        if ACCOUNTS_SHEET not in self._worksheets:
            raise SinkError(
                f"sheet {ACCOUNTS_SHEET!r} not found: add it with the columns "
                "account_name and access_token"
            )
        return self._read_grid(ACCOUNTS_SHEET)

    def read_posts(self) -> pd.DataFrame:
        """The data sheet as a DataFrame in sheet order, blank rows included."""
        return grid_to_frame(self._read_grid(DATA_SHEET))

    def _data_worksheet(self) -> gspread.Worksheet:
        """The data sheet, created when missing."""
        spreadsheet = self._open()
        if DATA_SHEET not in self._worksheets:
            with self._errors(f"cannot create sheet {DATA_SHEET!r}"):
                self._worksheets[DATA_SHEET] = spreadsheet.add_worksheet(
                    DATA_SHEET, NEW_SHEET_ROWS, NEW_SHEET_COLUMNS
                )
        return self._worksheets[DATA_SHEET]

    def _ensure_grid(self, worksheet: gspread.Worksheet, rows: int, columns: int) -> None:
        """Grow the grid once, up front, so no write can fail half-way on the cell limit."""
        needed_rows, columns = max(rows, worksheet.row_count), max(columns, worksheet.col_count)
        if (needed_rows, columns) == (worksheet.row_count, worksheet.col_count):
            return
        other_cells = sum(
            ws.row_count * ws.col_count for ws in self._worksheets.values() if ws.id != worksheet.id
        )
        # Grow in steps of GRID_ROW_STEP rows, so most later runs that add a few posts need
        # no resize request; without the headroom when only the exact size fits the limit.
        rows = -(-needed_rows // GRID_ROW_STEP) * GRID_ROW_STEP
        if other_cells + rows * columns > MAX_CELLS:
            rows = needed_rows
        if other_cells + rows * columns > MAX_CELLS:
            raise SinkError(
                f"the spreadsheet would need {other_cells + rows * columns:,} cells, over Google's "
                f"limit of {MAX_CELLS:,}: nothing was written; delete unused rows, columns or "
                "tabs, or move old rows to another spreadsheet"
            )
        with self._errors("cannot resize the data sheet"):
            worksheet.resize(rows, columns)

    def write_posts(
        self,
        frame: pd.DataFrame,
        owned: list[str],
        rows: list[tuple[int, int]] | None = None,
        header: bool = True,
    ) -> None:
        """Write the owned columns of the row ranges (all rows by default), and their header
        when asked, in ~2 MB chunks; then format the sheet."""
        worksheet = self._data_worksheet()
        self._ensure_grid(worksheet, len(frame) + 1, len(frame.columns))
        grown = GrownWorksheet(worksheet)
        ranges = [(0, len(frame))] if rows is None else rows
        with self._errors(f"cannot write sheet {DATA_SHEET!r}"):
            for first_column, columns in column_blocks(frame, owned):
                header_due = header
                for start, end in ranges:
                    for sheet_row, chunk in row_chunks(frame[columns].iloc[start:end], start + 2):
                        # The header rides with a chunk that starts right under it.
                        with_header = header_due and sheet_row == 2
                        write_block(
                            grown, chunk, sheet_row - with_header, first_column, with_header
                        )
                        header_due = header_due and not with_header
                if header_due:
                    write_block(grown, frame[columns].iloc[0:0], 1, first_column, True)
        self.format_posts(frame)

    def format_posts(self, frame: pd.DataFrame) -> None:
        """Wrapping off on the data range and every row 21 px, in one batchUpdate."""
        worksheet = self._data_worksheet()
        with self._errors(f"cannot format sheet {DATA_SHEET!r}"):
            sheet_format.format_data_sheet(
                self._open(),
                worksheet.id,
                data_rows=len(frame) + 1,
                data_columns=len(frame.columns),
                grid_rows=worksheet.row_count,
            )

    def write_account_cells(self, updates: list[CellUpdate]) -> None:
        """Write single cells of the accounts sheet as text (RAW), in one request."""
        if not updates:
            return
        spreadsheet = self._open()
        worksheet = self._worksheets[ACCOUNTS_SHEET]
        columns = max(update.column for update in updates)
        data = [
            {
                "range": gspread.utils.absolute_range_name(
                    ACCOUNTS_SHEET, gspread.utils.rowcol_to_a1(update.row, update.column)
                ),
                "values": [[update.value]],
            }
            for update in updates
        ]
        with self._errors(f"cannot write sheet {ACCOUNTS_SHEET!r}"):
            if columns > worksheet.col_count:
                worksheet.resize(cols=columns)
            spreadsheet.values_batch_update({"valueInputOption": "RAW", "data": data})
