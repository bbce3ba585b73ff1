"""The deterministic counts behind docs/benchmarks.md: Threads calls per run against the minimum,
Sheets requests per run, and the concurrency cap. Wall-clock times are never asserted here."""

from __future__ import annotations

import pandas as pd
import pytest

import bench
import threads_simulator as sim
from accounts import Account
from sink import WRITE_CHUNK_BYTES

SMALL = {"accounts": 2, "posts": 30, "new_posts": 3}
LARGE = {"accounts": 4, "posts": 120, "new_posts": 5}  # two list pages per account


def runs_by_name(runs: list[bench.EconomyRun]) -> dict[str, bench.EconomyRun]:
    """Runs keyed by their first word: first, steady, incremental."""
    return {run.name.split()[0]: run for run in runs}


@pytest.fixture(scope="module")
def small() -> dict[str, bench.EconomyRun]:
    return runs_by_name(bench.economy_runs(**SMALL, ttl_run=False))


@pytest.fixture(scope="module")
def large() -> dict[str, bench.EconomyRun]:
    return runs_by_name(bench.economy_runs(**LARGE, ttl_run=False))


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
    world = sim.make_world(3, 20, seed=bench.SEED)
    world.faults = sim.FaultPlan(latency_s=0.005)
    accounts = [
        Account(name, account.token, row)
        for row, (name, account) in enumerate(world.accounts.items(), start=2)
    ]
    with sim.serve(world) as server:
        _, calls = bench.collect_once(server.base_url, accounts, concurrency=3)
    assert world.stats.max_in_flight <= 3
    assert calls == world.stats.total == 3 + bench.insight_posts(world)


def chunked_write_requests() -> tuple[int, dict[str, int], int]:
    """Write a frame of about three write chunks through the product's sink, in memory."""
    rows = 3 * WRITE_CHUNK_BYTES // 2_000 + 10
    frame = pd.DataFrame(
        {"account_name": ["a"] * rows, "post_id": [str(10**17 + n) for n in range(rows)]}
    ).assign(text="x" * 2_000)
    owned = list(frame.columns)
    accounts_body = b'{"values": [["account_name", "access_token"]]}'
    adapter = bench.MemorySheetsAdapter(b'{"values": []}', rows + 1, accounts_body)
    sink = bench.memory_sink(adapter)
    sink.write_posts(frame, owned)
    return adapter.requests["values_update"], dict(adapter.requests), adapter.largest_body


def test_a_large_write_is_split_into_requests_of_about_2_mb():
    chunks, _, largest_body = chunked_write_requests()
    assert chunks >= 3
    assert largest_body <= WRITE_CHUNK_BYTES * 1.05


def test_a_chunked_write_sends_one_formatting_request_besides_its_chunks():
    _, requests, _ = chunked_write_requests()
    assert requests["batch_update"] == 1
