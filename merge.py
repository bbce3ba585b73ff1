"""Which columns the tool owns, and the outer merge of fresh posts into the sheet's rows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from threads_api import INSIGHT_METRICS

KEY_COLUMNS = ["account_name", "post_id"]
UPDATED_AT = "updated_at"
# Helper columns that live only during the merge; never written.
_ROW = "__sheet_row"
_FRESH_ORDER = "__fresh_order"
_FRESH_SUFFIX = "__fresh"


def owned_columns(post_fields: list[str] | tuple[str, ...]) -> list[str]:
    """The columns the tool writes, in the order new ones are added: keys, fields, metrics."""
    fields = [field for field in post_fields if field != "id"]
    return [*KEY_COLUMNS, *fields, *INSIGHT_METRICS, UPDATED_AT]


def key_text(value: object) -> str | None:
    """A key cell as stripped text; a number (an id an old sheet stored unquoted) becomes
    digits; blank is missing."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def normalize_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Make account_name and post_id comparable text (missing stays missing)."""
    frame = frame.copy()
    for column in KEY_COLUMNS:
        values = frame[column] if column in frame.columns else pd.Series(None, index=frame.index)
        frame[column] = values.map(key_text).astype(object)
    return frame


def duplicate_keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """Keys that stand on more than one row of the sheet."""
    keyed = frame.dropna(subset=KEY_COLUMNS)
    repeated = keyed[keyed.duplicated(KEY_COLUMNS, keep=False)]
    return sorted(set(map(tuple, repeated[KEY_COLUMNS].to_numpy().tolist())))


@dataclass
class MergeResult:
    """The merged table in sheet order, and what changed."""

    frame: pd.DataFrame
    new_rows: int
    updated_rows: int  # existing rows whose owned cells change
    duplicates: list[tuple[str, str]]
    write_ranges: list[tuple[int, int]]  # frame rows [start, end) the write must cover
    header_changed: bool  # an owned column is new: its header cell must be written

    @property
    def changed(self) -> bool:
        """True when writing would change the sheet."""
        return bool(self.write_ranges) or self.header_changed


def as_text(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells as comparable text, so 5 and 5.0 or None and NaN are not told apart."""
    return cells.map(lambda value: "" if pd.isna(value) else str(value).removesuffix(".0"))


def changed_rows(
    before: pd.DataFrame, after: pd.DataFrame, owned: list[str], matched: np.ndarray
) -> np.ndarray:
    """Which of the sheet's rows get a different value in an owned column.

    Only rows that matched a fresh post can change, so only those are compared.
    """
    changed = np.zeros(len(before), dtype=bool)
    positions = np.flatnonzero(matched)
    if len(positions):
        old = as_text(before.reindex(columns=owned).iloc[positions].reset_index(drop=True))
        new = as_text(after.reindex(columns=owned).iloc[positions].reset_index(drop=True))
        changed[positions] = (old != new).any(axis=1).to_numpy()
    return changed


def rows_to_write(keyed: np.ndarray, dirty: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [start, end) to write: in each run of rows that hold a post, from its first
    new or changed row to its end.

    Rows without a post key (blank rows, an analyst's totals row) end a run and are never
    written, so formulas and dates typed there survive; keyed rows between changed ones are
    rewritten with the values just read, which keeps one request per range.
    """
    ranges: list[tuple[int, int]] = []
    position = 0
    for is_keyed, run in itertools.groupby(keyed):
        length = len(list(run))
        if is_keyed and dirty[position : position + length].any():
            first = position + int(np.argmax(dirty[position : position + length]))
            ranges.append((first, position + length))
        position += length
    return ranges


def merge_posts(existing: pd.DataFrame, fresh: pd.DataFrame, owned: list[str]) -> MergeResult:
    """Outer-merge fresh posts into the sheet on account_name + post_id.

    Existing rows keep their positions and every column; a fresh value replaces the sheet's
    only where it is present; new posts go to the bottom, oldest first.
    """
    existing = normalize_keys(existing)
    existing[_ROW] = range(len(existing))
    fresh = normalize_keys(fresh).drop_duplicates(KEY_COLUMNS, keep="last")
    if "timestamp" in fresh.columns:
        fresh = fresh.sort_values("timestamp", kind="stable", na_position="first")
    fresh[_FRESH_ORDER] = range(len(fresh))

    merged = existing.merge(
        fresh, on=KEY_COLUMNS, how="outer", suffixes=("", _FRESH_SUFFIX), indicator=True
    )
    for column in fresh.columns:
        fresh_column = column + _FRESH_SUFFIX
        if fresh_column in merged.columns:
            merged[column] = merged[fresh_column].combine_first(merged[column]).astype(object)
            merged = merged.drop(columns=fresh_column)

    # An outer merge sorts by key: put existing rows back in sheet order, new ones last.
    merged = merged.sort_values([_ROW, _FRESH_ORDER], kind="stable", na_position="last")
    new_rows = int((merged["_merge"] == "right_only").sum())
    matched = (merged["_merge"] == "both").to_numpy()[: len(existing)]

    sheet_columns = [column for column in existing.columns if column != _ROW]
    added_columns = [column for column in owned if column not in sheet_columns]
    frame = merged.reindex(columns=sheet_columns + added_columns).reset_index(drop=True)
    changed = changed_rows(existing, frame, owned, matched)
    dirty = np.concatenate([changed, np.ones(new_rows, dtype=bool)])
    keyed = frame[KEY_COLUMNS].notna().all(axis=1).to_numpy()
    return MergeResult(
        frame,
        new_rows,
        int(changed.sum()),
        duplicate_keys(existing),
        rows_to_write(keyed, dirty),
        header_changed=bool(added_columns) and not frame.empty,
    )
