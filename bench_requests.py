"""Sheets requests and bytes per run (benchmark section 4): the real command against the Sheets
simulator whose data sheet already holds N rows, on a first, a steady and an incremental run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import threads_simulator
from bench_economy import ACCOUNTS, NEW_POSTS, POSTS, add_new_posts, run_real_sync
from bench_report import KB, Section, Table, Verdict, fmt
from bench_sheet_data import SEED, sheets_world, synthetic_sheet
from local_stack import LocalStack, local_stack

KINDS = ("token", "metadata", "values_get", "values_update", "values_batch_update", "batch_update")
RUNS = ("first", "steady", "incremental")
WRITE_QUOTA_PER_MIN = 60  # Sheets write requests per minute per user (a service account is one)


@dataclass
class SheetsRun:
    """Sheets traffic of one run of the real command."""

    rows: int
    name: str
    requests: int
    writes: int
    by_kind: dict[str, int]
    bytes_sent: int
    largest_body: int

    @property
    def chunks(self) -> int:
        """The data sheet's chunked writes (values.update requests)."""
        return self.by_kind.get("values_update", 0)

    @property
    def fixed_requests(self) -> int:
        """Requests other than the chunks: what must not depend on the sheet's size."""
        return self.requests - self.chunks


def record_run(stack: LocalStack, rows: int, name: str) -> SheetsRun:
    """The Sheets simulator's counters after a run."""
    stats = stack.sheets.stats
    return SheetsRun(
        rows,
        name,
        stats.requests,
        stats.writes,
        dict(stats.by_kind),
        stats.bytes_received,
        stats.largest_request_body,
    )


def sheets_runs(
    rows: int, accounts: int = ACCOUNTS, posts: int = POSTS, new_posts: int = NEW_POSTS
) -> list[SheetsRun]:
    """First, steady and incremental runs of the real command against an N-row sheet."""
    threads_world = threads_simulator.make_world(accounts, posts, seed=SEED)
    runs: list[SheetsRun] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        local_stack(threads_world, Path(folder), sheets_world(synthetic_sheet(rows).grid)) as stack,
    ):
        for name in RUNS:
            if name == "incremental":
                add_new_posts(threads_world, new_posts)
            run_real_sync(stack)
            runs.append(record_run(stack, rows, name))
    return runs


def requests_table() -> Table:
    """Table 4 with its notes; rows are added per run."""
    table = Table(
        "4. Sheets requests and bytes per run (Sheets simulator on 127.0.0.1)",
        ["rows before", "run", "requests", "writes", *KINDS, "fixed", "KB sent", "largest KB"],
    )
    table.notes = [
        f"Measured: `python threads_metrics.py` as a subprocess (`local_stack`) with {ACCOUNTS} "
        f"accounts x {POSTS} posts in the Threads simulator, against the Sheets simulator whose "
        "data sheet already holds the synthetic sheet of section 3 (N rows x 25 columns of other "
        "accounts' posts, so none of them is fetched). Three runs in a row: first (empty state: "
        f"every token is refreshed, {ACCOUNTS * POSTS} posts are new), steady (nothing new: no "
        f"data write), incremental ({NEW_POSTS} new posts).",
        "Only changed rows are written (`merge_posts().write_ranges`: in each run of post rows, "
        "from the first new or changed row to the run's end): the first and incremental runs "
        "append their new rows below the N rows and send only those. A run that refreshes the "
        "insights of posts high up in the sheet (TTL expired) writes from there on: section 3's "
        "`TTL expired` run shows that whole-sheet write.",
        "Counts and bytes are the simulator's (`SheetsWorld.stats`: requests by kind, write "
        "requests (token excluded), request bodies received). `values_update` = the data "
        "sheet's chunks of about 2 MB; `fixed` = requests - chunks. Reads are not in `KB sent`: "
        "a run downloads the data sheet once, and once more just before a write.",
        f"Quota: {WRITE_QUOTA_PER_MIN} write requests per minute per user; a run whose `writes` "
        "pass it within one minute gets 429 answers, which the retry policy waits out "
        "(4, 8, 16, 32 s).",
    ]
    return table


def requests_row(run: SheetsRun) -> list[str]:
    """One run's row of table 4."""
    return [
        f"{run.rows:,}",
        run.name,
        str(run.requests),
        str(run.writes),
        *(str(run.by_kind.get(kind, 0)) for kind in KINDS),
        str(run.fixed_requests),
        fmt(run.bytes_sent / KB, 1),
        fmt(run.largest_body / KB, 1),
    ]


def requests_verdict(by_run: dict[str, list[SheetsRun]]) -> Verdict:
    """Requests per run, apart from the chunks, must not depend on the sheet's size."""
    growth = {
        name: runs[-1].fixed_requests - runs[0].fixed_requests for name, runs in by_run.items()
    }
    grown = {name: extra for name, extra in growth.items() if extra}
    ordered = next(iter(by_run.values()))
    sizes = "/".join(f"{run.rows:,}" for run in ordered)
    measured = "; ".join(
        f"{name}: {'/'.join(str(run.fixed_requests) for run in runs)}"
        for name, runs in by_run.items()
    )
    worst = max((run for runs in by_run.values() for run in runs), key=lambda run: run.writes)
    return Verdict(
        "Sheets requests per run (real runs)",
        "constant apart from ~2 MB write chunks",
        f"requests besides the chunks at {sizes} rows: {measured}; most writes in a run: "
        f"{worst.writes} ({worst.rows:,} rows, {worst.name})",
        not grown,
        "constant across sizes"
        if not grown
        else "grows: " + ", ".join(f"{name} {extra:+d}" for name, extra in grown.items()),
    )


def requests_section(sizes: tuple[int, ...]) -> Section:
    """Sheets requests and bytes per run at each sheet size."""
    table = requests_table()
    by_run: dict[str, list[SheetsRun]] = {}
    for rows in sizes:
        for run in sheets_runs(rows):
            by_run.setdefault(run.name, []).append(run)
            table.rows.append(requests_row(run))
    return Section([table], [requests_verdict(by_run)])
