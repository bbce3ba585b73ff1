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


def test_row_chunks_split_large_writes_and_start_after_the_header():
    frame = pd.DataFrame({"text": ["x" * 1000] * 50})
    chunks = list(row_chunks(frame, limit_bytes=10_000))
    later = list(row_chunks(frame, first_row=40, limit_bytes=10_000))
    assert later[0][0] == 42 and sum(len(chunk) for _, chunk in later) == 10
    assert sum(len(chunk) for _, chunk in chunks) == 50
    assert chunks[0][0] == 1
    starts = [start for start, _ in chunks[1:]]
    sizes = [len(chunk) for _, chunk in chunks]
    assert starts[0] == sizes[0] + 2
    assert all(size * 1008 <= 10_000 + 1008 for size in sizes)


def test_row_chunks_count_non_ascii_as_json_escapes():
    ascii_rows = len(list(row_chunks(pd.DataFrame({"t": ["a" * 100] * 100}), limit_bytes=5_000)))
    cyrillic_rows = len(list(row_chunks(pd.DataFrame({"t": ["я" * 100] * 100}), limit_bytes=5_000)))
    assert cyrillic_rows > ascii_rows
