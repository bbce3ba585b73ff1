"""Which columns the tool owns, and the outer merge of fresh posts into the sheet's rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from logs import context
from threads_api import INSIGHT_METRICS

log = logging.getLogger(__name__)

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


def normalize_post_id(value: object) -> str | None:
    """A post id as text; a number (an old sheet written without quoting) becomes digits."""
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
        if column not in frame.columns:
            frame[column] = None
    frame["post_id"] = frame["post_id"].map(normalize_post_id).astype(object)
    frame["account_name"] = (
        frame["account_name"].map(lambda name: normalize_post_id(name)).astype(object)
    )
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

    @property
    def changed(self) -> bool:
        """True when writing the frame would change the sheet."""
        return self.new_rows > 0 or self.updated_rows > 0


def changed_rows(before: pd.DataFrame, after: pd.DataFrame, owned: list[str]) -> int:
    """How many of the sheet's rows get a different value in an owned column."""
    rows = len(before)

    def as_text(frame: pd.DataFrame) -> pd.DataFrame:
        # Compare as text so 5 and 5.0 or None and NaN are not counted as changes.
        cells = frame.reindex(columns=owned).iloc[:rows].reset_index(drop=True)
        return cells.map(lambda value: "" if pd.isna(value) else str(value).removesuffix(".0"))

    return int((as_text(before) != as_text(after)).any(axis=1).sum())


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

    duplicates = duplicate_keys(existing)
    if duplicates:
        log.warning(
            "%d post keys stand on more than one row; all are updated, none is added again",
            len(duplicates),
            extra=context(action="duplicates", examples=[list(key) for key in duplicates[:5]]),
        )

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

    sheet_columns = [column for column in existing.columns if column != _ROW]
    added_columns = [column for column in owned if column not in sheet_columns]
    frame = merged.reindex(columns=sheet_columns + added_columns).reset_index(drop=True)
    return MergeResult(frame, new_rows, changed_rows(existing, frame, owned), duplicates)
