"""Reading a sheet grid into a DataFrame, owned column blocks, and ~2 MB write chunks."""

from __future__ import annotations

import pandas as pd

from sink import column_blocks, column_names, grid_to_frame, row_chunks


def test_grid_keeps_na_like_texts_and_blank_rows():
    frame = grid_to_frame([["post_id", "text"], ["1", "NA"], [], ["2", "null"], ["3", "#N/A"]])
    assert frame["text"].tolist() == ["NA", None, "null", "#N/A"]
    assert len(frame) == 4


def test_blank_and_repeated_headers_get_placeholders_that_are_never_owned():
    assert column_names(["post_id", "", "post_id", None], 5) == [
        "post_id",
        "__column_2",
        "__column_3",
        "__column_4",
        "__column_5",
    ]


def test_column_blocks_skip_analyst_columns_between_owned_ones():
    frame = pd.DataFrame(columns=["account_name", "post_id", "note", "likes", "formula", "views"])
    blocks = list(column_blocks(frame, ["account_name", "post_id", "likes", "views"]))
    assert blocks == [(1, ["account_name", "post_id"]), (4, ["likes"]), (6, ["views"])]


def test_row_chunks_split_large_writes_into_consecutive_sheet_rows():
    frame = pd.DataFrame({"text": ["x" * 1000] * 50})
    chunks = list(row_chunks(frame, first_sheet_row=7, limit_bytes=10_000))
    assert sum(len(chunk) for _, chunk in chunks) == 50
    rows = [row for row, _ in chunks]
    sizes = [len(chunk) for _, chunk in chunks]
    assert rows == [7 + sum(sizes[:index]) for index in range(len(sizes))]
    assert len(chunks) > 3
    assert all(size * 1008 <= 10_000 + 1008 for size in sizes)
    assert list(row_chunks(frame.iloc[0:0], first_sheet_row=2)) == []


def test_row_chunks_count_non_ascii_as_json_escapes():
    ascii_rows = len(list(row_chunks(pd.DataFrame({"t": ["a" * 100] * 100}), 2, limit_bytes=5_000)))
    cyrillic_rows = len(
        list(row_chunks(pd.DataFrame({"t": ["я" * 100] * 100}), 2, limit_bytes=5_000))
    )
    assert cyrillic_rows > ascii_rows
