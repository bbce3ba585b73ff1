"""What fits in a 10-minute cadence (benchmark section 5): accounts x posts per run, and the
Threads and Sheets quotas, derived from the measured sections (nothing is run here)."""

from __future__ import annotations

from typing import Any

from bench_collection import BUDGET_CONCURRENCY, METRICS_TTL_S
from bench_report import Section, Table, fmt
from bench_requests import WRITE_QUOTA_PER_MIN
from sink import WRITE_CHUNK_BYTES

CADENCE_S = 600  # the workflow's schedule: every 10 minutes
SHEETS_RESERVE_S = 120  # left for the Sheets side of a run: reads, merge, chunked writes
LATENCIES_S = (0.1, 0.25, 0.5)
ACCOUNT_COUNTS = (20, 100)
DAILY_CALLS_FLOOR = 48_000  # Threads: 4,800 x impressions per 24 h, impressions floored at 10
RUNS_PER_DAY = 24 * 3600 // CADENCE_S
TTL_RUNS_PER_DAY = 24 * 3600 // int(METRICS_TTL_S)


def calls_in_one_run(latency_s: float, concurrency: int, ratio: float) -> int:
    """Threads calls that fit the cadence at this latency, given the measured wall/ideal."""
    return int((CADENCE_S - SHEETS_RESERVE_S) * concurrency / (latency_s * ratio))


def capacity_rows(ratios: dict[int, float]) -> list[list[str]]:
    """One row per latency and concurrency (the budget's C and the highest measured)."""
    rows = []
    for latency_s in LATENCIES_S:
        for concurrency in (BUDGET_CONCURRENCY, max(ratios)):
            calls = calls_in_one_run(latency_s, concurrency, ratios[concurrency])
            # A accounts x P posts cost A list calls + A x P insights: P = calls / A - 1.
            posts = [f"{calls // accounts - 1:,}" for accounts in ACCOUNT_COUNTS]
            row = [f"{latency_s * 1000:.0f}", str(concurrency), fmt(ratios[concurrency])]
            rows.append([*row, f"{calls:,}", *posts])
    return rows


def threads_quota_note() -> str:
    """How many posts per account the daily Threads quota allows at the default TTL."""
    per_account = (DAILY_CALLS_FLOOR - RUNS_PER_DAY) // TTL_RUNS_PER_DAY
    return (
        f"Threads budget per account: {RUNS_PER_DAY} runs a day x 1 list call + "
        f"{TTL_RUNS_PER_DAY} TTL refreshes x P insights <= {DAILY_CALLS_FLOOR:,} calls "
        f"(4,800 x impressions, impressions floored at 10): P <= {per_account:,} posts per "
        "account at the floor, more with more impressions; new posts add one call each."
    )


def sheets_quota_note(write: dict[str, float]) -> str:
    """How many rows a whole-sheet write can hold before it passes the write quota."""
    rows_per_chunk = WRITE_CHUNK_BYTES / write["bytes_per_row"]
    per_chunk, fixed = write["writes_per_chunk"], write["writes_besides_chunks"]
    rows_at_quota = (WRITE_QUOTA_PER_MIN - fixed) / per_chunk * rows_per_chunk
    return (
        f"Sheets: a whole-sheet write (section 3, TTL expired) sends about "
        f"{write['bytes_per_row']:,.0f} bytes per row, so about {rows_per_chunk:,.0f} rows per "
        f"2 MB chunk, and costs {per_chunk:.0f} write request(s) per chunk + {fixed:.0f}: it "
        f"reaches {WRITE_QUOTA_PER_MIN} write requests at about {rows_at_quota:,.0f} rows. "
        "Whether they fall within one minute depends on how fast Google takes 2 MB requests; "
        "past the quota the run slows down on 429 answers but completes. Runs between TTL "
        "expiries write only their new rows."
    )


def capacity_section(facts: dict[str, Any]) -> Section:
    """Derived from the measurements: accounts x posts that fit one run, and the quotas."""
    ratios: dict[int, float] = facts["ratios"]
    table = Table(
        "5. What fits in a 10-minute cadence (derived from the measurements above)",
        ["latency ms", "C", "measured wall/ideal", "calls in one run"]
        + [f"posts each, {accounts} accounts" for accounts in ACCOUNT_COUNTS],
        capacity_rows(ratios),
    )
    table.notes = [
        "With the default THREADS_METRICS_TTL_MIN=60 every post's insights come due in the same "
        "run once an hour (the first run fetched them together), so that run must fit the "
        "cadence: A accounts x P posts cost A list calls + A x P insights calls. `calls in one "
        f"run` = ({CADENCE_S} s - {SHEETS_RESERVE_S} s left for Sheets) x C / (latency x "
        "measured wall/ideal at 100 ms); a higher latency hides the per-call overhead better, "
        "so these are conservative.",
        threads_quota_note(),
    ]
    if "write" in facts:
        table.notes.append(sheets_quota_note(facts["write"]))
    if "phase" in facts:
        rows, seconds = facts["phase"]
        table.notes.append(
            f"The sheet phase's own CPU time is {fmt(seconds, 1)} s at {rows:,} rows (section 3)."
        )
    return Section([table], [])
