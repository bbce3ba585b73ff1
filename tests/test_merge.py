"""The outer merge on account_name + post_id: positions, analyst columns, duplicates."""

from __future__ import annotations

import pandas as pd

from merge import merge_posts, owned_columns
from sink import grid_to_frame

OWNED = owned_columns(["id", "text", "timestamp", "media_type"])


def sheet(*rows: list) -> pd.DataFrame:
    """A data sheet as grid_to_frame reads it."""
    return grid_to_frame([list(rows[0]), *[list(row) for row in rows[1:]]])


def fresh(*records: dict) -> pd.DataFrame:
    """Fetched rows as the collector builds them."""
    return pd.DataFrame.from_records(records).astype(object)


def test_new_posts_go_to_the_bottom_oldest_first_and_existing_rows_keep_positions():
    existing = sheet(
        ["account_name", "post_id", "text", "note"],
        ["a", "111", "first", "keep me"],
        ["b", "222", "second", None],
    )
    new = fresh(
        {"account_name": "a", "post_id": "333", "timestamp": "2024-05-02T00:00:00+0000"},
        {"account_name": "a", "post_id": "444", "timestamp": "2024-05-01T00:00:00+0000"},
        {"account_name": "b", "post_id": "222", "text": "second, edited"},
    )
    result = merge_posts(existing, new, OWNED)
    assert result.frame["post_id"].tolist() == ["111", "222", "444", "333"]
    assert result.frame["text"].tolist()[:2] == ["first", "second, edited"]
    assert result.frame["note"].tolist()[0] == "keep me"
    assert (result.new_rows, result.updated_rows) == (2, 1)


def test_existing_column_order_is_kept_and_new_owned_columns_go_right():
    existing = sheet(["note", "post_id", "account_name", "likes"], ["x", "1", "a", 5])
    result = merge_posts(existing, fresh({"account_name": "a", "post_id": "1", "likes": 9}), OWNED)
    columns = result.frame.columns.tolist()
    assert columns[:4] == ["note", "post_id", "account_name", "likes"]
    assert columns[4:] == [c for c in OWNED if c not in ("post_id", "account_name", "likes")]
    assert result.frame.loc[0, "likes"] == 9
    assert result.frame.loc[0, "note"] == "x"


def test_a_value_missing_from_the_fetch_keeps_the_sheet_value():
    existing = sheet(["account_name", "post_id", "text", "likes"], ["a", "1", "hello", 7])
    result = merge_posts(existing, fresh({"account_name": "a", "post_id": "1", "views": 3}), OWNED)
    assert result.frame.loc[0, "text"] == "hello"
    assert result.frame.loc[0, "likes"] == 7
    assert result.frame.loc[0, "views"] == 3


def test_duplicates_already_in_the_sheet_are_reported_and_not_multiplied():
    existing = sheet(
        ["account_name", "post_id", "likes"], ["a", "1", 1], ["a", "1", 2], ["a", "2", 3]
    )
    result = merge_posts(existing, fresh({"account_name": "a", "post_id": "1", "likes": 10}), OWNED)
    assert len(result.frame) == 3
    assert result.duplicates == [("a", "1")]
    assert result.frame["likes"].tolist() == [10, 10, 3]
    assert result.new_rows == 0


def test_blank_rows_in_the_middle_keep_their_place():
    existing = sheet(["account_name", "post_id", "note"], ["a", "1", "n1"], [], ["a", "2", "n2"])
    result = merge_posts(existing, fresh({"account_name": "a", "post_id": "3"}), OWNED)
    assert result.frame["note"].tolist()[:3] == ["n1", None, "n2"]
    post_ids = [None if pd.isna(value) else value for value in result.frame["post_id"]]
    assert post_ids == ["1", None, "2", "3"]


def test_a_post_id_stored_as_a_number_matches_its_text_id():
    existing = sheet(["account_name", "post_id"], ["a", 123456789012345.0])
    result = merge_posts(
        existing, fresh({"account_name": "a", "post_id": "123456789012345"}), OWNED
    )
    assert len(result.frame) == 1
    assert result.new_rows == 0


def test_merge_into_an_empty_sheet_writes_owned_columns_only():
    result = merge_posts(pd.DataFrame(), fresh({"account_name": "a", "post_id": "1"}), OWNED)
    assert result.frame.columns.tolist() == OWNED
    assert result.new_rows == 1


def test_hostile_texts_are_kept_exactly():
    texts = ['=IMPORTXML("http://x","//a")', "NA", "null", "N/A", "TRUE", "0012", "1e5", ""]
    records = [{"account_name": "a", "post_id": str(i), "text": t} for i, t in enumerate(texts)]
    result = merge_posts(pd.DataFrame(), fresh(*records), OWNED)
    assert result.frame["text"].tolist() == texts


def test_write_ranges_skip_rows_without_a_post_and_start_at_the_first_change():
    existing = sheet(
        ["account_name", "post_id", "likes"],
        ["a", "1", 1],
        ["a", "2", 2],
        [None, None, "=SUM(C2:C3)"],
        ["a", "3", 3],
        ["a", "4", 4],
    )
    new = fresh(
        {"account_name": "a", "post_id": "2", "likes": 20},
        {"account_name": "a", "post_id": "4", "likes": 4},
        {"account_name": "a", "post_id": "5", "likes": 5},
    )
    result = merge_posts(existing, new, OWNED)
    # Post 2 alone (the totals row ends its run), then only the new post 5: posts 3 and 4
    # are unchanged and come before it.
    assert result.write_ranges == [(1, 2), (5, 6)]
    assert result.header_changed is True  # text, timestamp, ... are new columns
    unchanged = merge_posts(result.frame, new, OWNED)
    assert unchanged.write_ranges == [] and not unchanged.changed
