"""The deterministic counts behind docs/benchmarks.md: Threads calls per run against the minimum,
Sheets requests and bytes per run, the write chunks, and the concurrency cap. Wall-clock times
are never asserted here."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import threads_simulator as sim
from accounts import Account
from bench_collection import collect_once
from bench_economy import EconomyRun, economy_runs, insight_posts
from bench_requests import SheetsRun, sheets_runs
from bench_sheet_data import SEED, sheets_world, synthetic_sheet, values_get_body
from bench_sheet_worker import PhaseAdapter, measure_phase, memory_sink, phase_world
from sink import WRITE_CHUNK_BYTES

SMALL = {"accounts": 2, "posts": 30, "new_posts": 3}
LARGE = {"accounts": 4, "posts": 120, "new_posts": 5}  # two list pages per account
SHEET_ROWS = (500, 2_500)  # data rows already in the sheet


def runs_by_name(runs: list[EconomyRun]) -> dict[str, EconomyRun]:
    """Runs keyed by their first word: first, steady, incremental."""
    return {run.name.split()[0]: run for run in runs}


@pytest.fixture(scope="module")
def small() -> dict[str, EconomyRun]:
    return runs_by_name(economy_runs(**SMALL, ttl_run=False))


@pytest.fixture(scope="module")
def large() -> dict[str, EconomyRun]:
    return runs_by_name(economy_runs(**LARGE, ttl_run=False))


def test_first_run_lists_every_page_and_asks_insights_once_per_post_that_is_not_a_repost(large):
    first = large["first"]
    assert first.list_calls == LARGE["accounts"] * 2
    assert first.insights == first.minimum_insights
    assert first.at_minimum


def test_first_run_refreshes_each_token_whose_expiry_is_unknown_once(large):
    assert large["first"].refresh == LARGE["accounts"]
    assert large["steady"].refresh == 0


def test_steady_run_lists_each_account_once_and_fetches_no_insights(small, large):
    for runs, sizes in ((small, SMALL), (large, LARGE)):
        assert runs["steady"].list_calls == sizes["accounts"]
        assert runs["steady"].insights == 0


def test_incremental_run_fetches_insights_only_for_the_new_posts(small, large):
    for runs, sizes in ((small, SMALL), (large, LARGE)):
        assert runs["incremental"].list_calls == sizes["accounts"]
        assert runs["incremental"].insights == sizes["new_posts"]


def test_sheets_requests_of_a_run_do_not_depend_on_accounts_or_posts(small, large):
    for name in ("first", "steady", "incremental"):
        assert small[name].sheets_by_kind == large[name].sheets_by_kind, name


def test_steady_run_writes_no_data_sheet_cells(small):
    assert small["steady"].sheets_by_kind.get("values_update", 0) == 0


def test_collector_never_has_more_than_concurrency_requests_in_flight():
    world = sim.make_world(3, 20, seed=SEED)
    world.faults = sim.FaultPlan(latency_s=0.005)
    accounts = [
        Account(name, account.token, row)
        for row, (name, account) in enumerate(world.accounts.items(), start=2)
    ]
    with sim.serve(world) as server:
        _, calls = collect_once(server.base_url, accounts, concurrency=3)
    assert world.stats.max_in_flight <= 3
    assert calls == world.stats.total == 3 + insight_posts(world)


def chunked_write_requests() -> tuple[int, dict[str, int], int]:
    """Write a frame of about three write chunks through the product's sink, in memory."""
    rows = 3 * WRITE_CHUNK_BYTES // 2_000 + 10
    frame = pd.DataFrame(
        {"account_name": ["a"] * rows, "post_id": [str(10**17 + n) for n in range(rows)]}
    ).assign(text="x" * 2_000)
    owned = list(frame.columns)
    adapter = PhaseAdapter(phase_world(rows), b'{"values": []}')
    sink = memory_sink(adapter)
    sink.write_posts(frame, owned)
    return adapter.requests["values_update"], dict(adapter.requests), adapter.largest_body


def test_a_large_write_is_split_into_requests_of_about_2_mb():
    chunks, _, largest_body = chunked_write_requests()
    assert chunks >= 3
    assert largest_body <= WRITE_CHUNK_BYTES * 1.05


def test_a_chunked_write_sends_one_formatting_request_besides_its_chunks():
    _, requests, _ = chunked_write_requests()
    assert requests["batch_update"] == 1


def test_a_run_that_writes_nothing_reads_the_data_sheet_once(small):
    reads = {name: run.sheets_by_kind.get("values_get", 0) for name, run in small.items()}
    assert reads["steady"] == reads["incremental"] - 1


@pytest.fixture(scope="module")
def sheet_runs() -> dict[int, dict[str, SheetsRun]]:
    """First, steady and incremental runs of the real command against two sheet sizes."""
    return {rows: {run.name: run for run in sheets_runs(rows, **SMALL)} for rows in SHEET_ROWS}


def test_sheets_requests_of_a_run_do_not_depend_on_the_sheets_rows(sheet_runs):
    small_sheet, large_sheet = (sheet_runs[rows] for rows in SHEET_ROWS)
    for name, run in small_sheet.items():
        assert run.by_kind == large_sheet[name].by_kind, name


def test_an_incremental_run_sends_only_its_new_rows_whatever_the_sheets_size(sheet_runs):
    small_sheet, large_sheet = (sheet_runs[rows] for rows in SHEET_ROWS)
    assert small_sheet["incremental"].chunks == 1
    sent = [sheet["incremental"].bytes_sent for sheet in (small_sheet, large_sheet)]
    assert sent[0] < 10_000  # 3 rows and the formatting, not the 500 rows of the sheet
    assert sent[1] - sent[0] < 20  # only the row numbers in the ranges grow


def measure_phase_in_process(tmp_path, rows: int, ttl_expired: bool) -> dict:
    """The sheet phase worker's measurement, run here on a synthetic sheet."""
    sheet = synthetic_sheet(rows)
    (tmp_path / "values.json").write_bytes(values_get_body(sheets_world(sheet.grid)))
    (tmp_path / "fresh.json").write_text(json.dumps(sheet.fresh(ttl_expired)))
    return measure_phase(tmp_path, rows, trace=False, compare=ttl_expired)


def test_a_ttl_expired_run_rewrites_the_whole_sheet_in_2_mb_chunks(tmp_path):
    result = measure_phase_in_process(tmp_path, 3_000, ttl_expired=True)
    new_rows = result["new_rows"]
    assert result["rows_written"] == 3_000 + new_rows
    assert result["requests"]["values_update"] == math.ceil(result["bytes_sent"] / 2_000_000)
    # Besides the chunks: one resize for the new rows and one formatting request.
    assert result["requests"]["batch_update"] == 2
    assert result["direct_same_payload"]


def test_a_run_with_only_new_posts_writes_only_the_new_rows(tmp_path):
    result = measure_phase_in_process(tmp_path, 3_000, ttl_expired=False)
    assert result["rows_written"] == result["new_rows"] == 30
    assert result["requests"]["values_update"] == 1
