"""Data sheet formatting: no wrapping, 21 px rows, in one batchUpdate that keeps other formats."""

from __future__ import annotations

from typing import Any

ROW_HEIGHT_PX = 21


def format_requests(
    sheet_id: int, data_rows: int, data_columns: int, grid_rows: int
) -> list[dict[str, Any]]:
    """The batchUpdate requests: wrapping off on the data range, every row of the grid 21 px.

    The field masks name only wrapStrategy and pixelSize: a wider mask (userEnteredFormat, *)
    would wipe colours, number formats and borders that analysts set.
    """
    return [
        {
            "repeatCell": {
                "range": {
                    "sheetId": sheet_id,
                    "startRowIndex": 0,
                    "endRowIndex": data_rows,
                    "startColumnIndex": 0,
                    "endColumnIndex": data_columns,
                },
                "cell": {"userEnteredFormat": {"wrapStrategy": "CLIP"}},
                "fields": "userEnteredFormat.wrapStrategy",
            }
        },
        {
            "updateDimensionProperties": {
                "range": {
                    "sheetId": sheet_id,
                    "dimension": "ROWS",
                    "startIndex": 0,
                    "endIndex": grid_rows,
                },
                "properties": {"pixelSize": ROW_HEIGHT_PX},
                "fields": "pixelSize",
            }
        },
    ]


def format_data_sheet(
    spreadsheet: Any, sheet_id: int, data_rows: int, data_columns: int, grid_rows: int
) -> None:
    """Send the formatting as one atomic spreadsheets.batchUpdate (one write request)."""
    requests = format_requests(sheet_id, data_rows, data_columns, grid_rows)
    spreadsheet.batch_update({"requests": requests})
