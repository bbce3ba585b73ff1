"""Benchmarks of Threads Metrics against its limits (issue 7): `python bench.py [--quick|--full]`.

Four measurements, each held against a budget, all on 127.0.0.1 (nothing talks to Meta or Google):

1. Collection scaling: the real `Collector` over real HTTP against the Threads simulator with
   injected latency, at several THREADS_CONCURRENCY values; wall time against
   ceil(calls / C) x latency.
2. API economy: the real command (`threads_metrics.py` in a subprocess, `local_stack`) on a first,
   a steady, an incremental and a TTL-expired run; Threads calls against the minimum.
3. Sheet phase: read -> merge -> write payload of the product (`GoogleSheetsSink.read_posts`,
   `merge_posts`, `GoogleSheetsSink.write_posts`) on a synthetic N x 25 sheet, with the network
   replaced by an in-memory transport adapter; time and peak memory, each size in a fresh
   subprocess; compared with gspread-dataframe's reader and with a payload built from df.values.
4. Sheets requests and bytes per run: the real command against the Sheets simulator holding an
   N-row data sheet.

Prints a plain table per measurement and writes the Markdown report (default docs/benchmarks.md).
Wall-clock numbers are never asserted in tests; tests/test_bench_counts.py checks the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
import requests
from requests.adapters import BaseAdapter

import sheets_simulator
import threads_simulator
from accounts import Account
from collect import Collector
from config import DEFAULT_POST_FIELDS
from http_session import build_session
from local_stack import SPREADSHEET_ID, LocalStack, local_stack, service_account_info
from merge import merge_posts, owned_columns
from run_control import RunControl
from run_stats import RunStats
from sink import ACCOUNTS_SHEET, DATA_SHEET, WRITE_CHUNK_BYTES
from state_store import empty_state
from threads_api import ThreadsClient

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
MB = 1_000_000
SEED = 1

# ---- budgets (issue 7) ------------------------------------------------------------------------
IDEAL_FACTOR_BUDGET = 1.2  # collection wall time within 1.2 x ideal ...
BUDGET_CONCURRENCY = 8  # ... at THREADS_CONCURRENCY = 8
SHEET_BUDGET_ROWS = 50_000
SHEET_BUDGET_S = 10.0
SHEET_BUDGET_MB = 800.0

# ---- workloads ----------------------------------------------------------------------------------
LATENCY_S = 0.1
CONCURRENCIES = (1, 4, 8, 16)
REQUEST_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 3600.0
METRICS_TTL_S = 3600.0
PAGE_SIZE = 100  # threads_api.PAGE_LIMIT: posts per list call
ECONOMY_ACCOUNTS, ECONOMY_POSTS, ECONOMY_NEW_POSTS = 5, 100, 7
SHEET_COLUMNS = 25
TOUCHED_SHARE, NEW_SHARE = 0.10, 0.01  # of the sheet's rows, in the fresh frame of the merge
SHEET_ACCOUNTS = 50  # accounts the synthetic sheet's rows belong to
ANALYST_COLUMNS = (
    "note",
    "category",
    "score",
    "engagement_rate",
    "reviewed",
    "campaign",
    "budget_rub",
    "clicks_formula",
)
SYNC_TIMEOUT_S = 900.0
NAGLE_PROBE_REQUESTS = 30


@dataclass(frozen=True)
class Mode:
    """Sizes of one benchmark mode."""

    name: str
    accounts: int
    posts: int
    serial_accounts: int  # C = 1 runs on this many accounts, then is scaled to all of them
    sheet_rows: tuple[int, ...]


QUICK = Mode("quick", accounts=4, posts=50, serial_accounts=1, sheet_rows=(5_000, 10_000))
FULL = Mode("full", accounts=20, posts=200, serial_accounts=2, sheet_rows=(5_000, 20_000, 50_000))


# ---- report building blocks -----------------------------------------------------------------
@dataclass
class Table:
    """One result table with the sentences that say exactly what was run."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """One budget: PASS or MISS, with the measured value and the margin."""

    name: str
    budget: str
    measured: str
    passed: bool | None  # None: not measured in this mode
    margin: str
    why: str = ""

    @property
    def label(self) -> str:
        """PASS, MISS or n/a."""
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class Section:
    """A measurement's tables and budget verdicts."""

    tables: list[Table]
    verdicts: list[Verdict]
    facts: dict[str, Any] = field(default_factory=dict)  # for the derived capacity table


def fmt(value: float, digits: int = 2) -> str:
    """A number with a fixed count of decimals."""
    return f"{value:,.{digits}f}"


def plain_table(table: Table) -> str:
    """The table as aligned plain text for the terminal."""
    widths = [len(header) for header in table.headers]
    for row in table.rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [table.title, "-" * len(table.title)]
    for row in [table.headers, *table.rows]:
        lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(table: Table) -> str:
    """The table in GitHub Markdown."""
    lines = ["| " + " | ".join(table.headers) + " |"]
    aligns = [" --- "] + [" ---: "] * (len(table.headers) - 1)
    lines.append("|" + "|".join(aligns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def child_env() -> dict[str, str]:
    """Environment of benchmark subprocesses: this one, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


# ==== 1. collection scaling ======================================================================
@dataclass
class ThreadsServerInfo:
    """What the simulator process reports about its world."""

    base_url: str
    accounts: list[tuple[str, str]]  # (username, token)
    posts: int
    reposts: int


def disable_nagle(enabled: bool = True) -> None:
    """Answer from the Threads simulator without Nagle's delay (TCP_NODELAY), in this process.

    The simulator's handler writes the headers and the body in two sends; with Nagle's algorithm
    on, the body waits for the client's delayed ACK (about 40 ms on Linux), which would be
    measured as latency the real API does not add. See nagle_probe().
    """
    threads_simulator._Handler.disable_nagle_algorithm = enabled


def _serve_threads_world(connection: Any, accounts: int, posts: int, latency_s: float) -> None:
    """Child process: serve make_world(accounts, posts) with latency; answer stats/reset/stop."""
    disable_nagle()
    world = threads_simulator.make_world(accounts, posts, seed=SEED)
    world.faults = threads_simulator.FaultPlan(latency_s=latency_s)
    all_posts = [post for name in world.accounts for post in world.posts_of(name)]
    with threads_simulator.serve(world) as server:
        connection.send(
            ThreadsServerInfo(
                server.base_url,
                [(name, account.token) for name, account in world.accounts.items()],
                len(all_posts),
                sum(post.media_type == "REPOST_FACADE" for post in all_posts),
            )
        )
        while True:
            command = connection.recv()
            if command == "stats":
                stats = world.stats
                connection.send(
                    {
                        "by_kind": dict(stats.by_kind),
                        "total": stats.total,
                        "max_in_flight": stats.max_in_flight,
                    }
                )
            elif command == "reset":
                world.reset_stats()
                connection.send("ok")
            else:
                connection.send("bye")
                return


class ThreadsServerProcess:
    """The Threads simulator in its own process, so its CPU does not compete with the client's
    GIL (one process serving both tops out near 330 requests/s)."""

    def __init__(self, accounts: int, posts: int, latency_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=_serve_threads_world, args=(child, accounts, posts, latency_s), daemon=True
        )
        self._process.start()
        self.info: ThreadsServerInfo = self._connection.recv()

    def ask(self, command: str) -> Any:
        """Send a command to the simulator process and return its answer."""
        self._connection.send(command)
        return self._connection.recv()

    def stop(self) -> None:
        """Stop serving and wait for the process to end."""
        with contextlib.suppress(OSError, EOFError):
            self.ask("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()


@contextlib.contextmanager
def threads_server_process(accounts: int, posts: int, latency_s: float) -> Iterator[Any]:
    """Run the Threads simulator in a child process for the with-block."""
    server = ThreadsServerProcess(accounts, posts, latency_s)
    try:
        yield server
    finally:
        server.stop()


def nagle_probe(requests_count: int = NAGLE_PROBE_REQUESTS) -> dict[bool, float]:
    """Milliseconds per sequential insights call at zero latency, Nagle on and off."""
    world = threads_simulator.make_world(1, 1, seed=SEED)
    account = next(iter(world.accounts.values()))
    post_id = world.posts_of(account.username)[0].id
    params = {"metric": "views,likes", "access_token": account.token}
    result: dict[bool, float] = {}
    for nodelay in (False, True):
        disable_nagle(nodelay)
        with threads_simulator.serve(world) as server, build_session(REQUEST_TIMEOUT_S) as session:
            url = f"{server.base_url}/v1.0/{post_id}/insights"
            session.get(url, params=params)  # connect first
            started = time.perf_counter()
            for _ in range(requests_count):
                session.get(url, params=params)
            result[nodelay] = (time.perf_counter() - started) / requests_count * 1000
    disable_nagle(False)
    return result


@dataclass
class CollectionRun:
    """One collection at one concurrency."""

    concurrency: int
    accounts: int
    wall_s: float
    calls: int
    by_kind: dict[str, int]
    max_in_flight: int

    def ideal_s(self, latency_s: float) -> float:
        """ceil(calls / C) x latency: every slot busy all the time, no overhead."""
        return math.ceil(self.calls / self.concurrency) * latency_s


def collect_once(base_url: str, accounts: list[Account], concurrency: int) -> tuple[float, int]:
    """Run the product's Collector on a first run (empty state and sheet); (wall s, calls)."""
    control, stats = RunControl(RUN_TIMEOUT_S), RunStats()
    session = build_session(REQUEST_TIMEOUT_S, pool_size=concurrency)
    client = ThreadsClient(
        base_url, session, control, concurrency, DEFAULT_POST_FIELDS, stats=stats
    )
    collector = Collector(client, empty_state(), pd.DataFrame(), METRICS_TTL_S, stats, control)
    started = time.perf_counter()
    result = collector.run(accounts, concurrency)
    wall_s = time.perf_counter() - started
    session.close()
    failed = {name: outcome.error for name, outcome in result.outcomes.items() if outcome.error}
    if failed:
        raise RuntimeError(f"collection failed for {failed}")
    return wall_s, client.calls


def measure_collection(
    server: ThreadsServerProcess, concurrency: int, account_count: int
) -> CollectionRun:
    """Collect the first account_count accounts at one concurrency and read the server's stats."""
    accounts = [
        Account(name, token, row)
        for row, (name, token) in enumerate(server.info.accounts[:account_count], start=2)
    ]
    server.ask("reset")
    wall_s, calls = collect_once(server.info.base_url, accounts, concurrency)
    stats = server.ask("stats")
    if stats["total"] != calls:
        raise RuntimeError(f"client counted {calls} calls, simulator served {stats['total']}")
    return CollectionRun(
        concurrency, account_count, wall_s, calls, stats["by_kind"], stats["max_in_flight"]
    )


def collection_section(mode: Mode, latency_s: float = LATENCY_S) -> Section:
    """Collection scaling: wall time against ceil(calls / C) x latency for each C."""
    table = Table(
        f"1. Collection scaling ({mode.accounts} accounts x {mode.posts} posts, "
        f"{latency_s * 1000:.0f} ms per request)",
        [
            "C",
            "accounts run",
            "list",
            "insights",
            "calls",
            "ideal s",
            "wall s",
            "wall/ideal",
            "req/s",
            "max in flight",
        ],
    )
    verdicts: list[Verdict] = []
    ratios: dict[int, float] = {}
    probe = nagle_probe()
    with threads_server_process(mode.accounts, mode.posts, latency_s) as server:
        info = server.info
        expected_calls = mode.accounts * math.ceil(mode.posts / PAGE_SIZE) + (
            info.posts - info.reposts
        )
        for concurrency in CONCURRENCIES:
            count = mode.serial_accounts if concurrency == 1 else mode.accounts
            run = measure_collection(server, concurrency, count)
            scale = expected_calls / run.calls if count < mode.accounts else 1.0
            calls = run.calls * scale
            wall_s = run.wall_s * scale
            ideal_s = math.ceil(calls / concurrency) * latency_s
            ratios[concurrency] = wall_s / ideal_s
            label = "scaled" if scale != 1.0 else ""
            table.rows.append(
                [
                    str(concurrency),
                    f"{count} of {mode.accounts}",
                    str(run.by_kind.get("list", 0)),
                    str(run.by_kind.get("insights", 0)),
                    f"{calls:,.0f}" + (f" ({label})" if label else ""),
                    fmt(ideal_s, 1),
                    fmt(wall_s, 1) + (f" ({label})" if label else ""),
                    fmt(wall_s / ideal_s),
                    fmt(run.calls / run.wall_s, 0),
                    f"{run.max_in_flight} (cap {concurrency})",
                ]
            )
            if run.max_in_flight > concurrency:
                verdicts.append(
                    Verdict(
                        f"requests in flight at C = {concurrency}",
                        f"<= {concurrency}",
                        str(run.max_in_flight),
                        False,
                        f"{run.max_in_flight - concurrency} over the cap",
                    )
                )
            if concurrency == BUDGET_CONCURRENCY:
                ratio = wall_s / ideal_s
                verdicts.append(
                    Verdict(
                        f"collection wall time at C = {BUDGET_CONCURRENCY}",
                        f"<= {IDEAL_FACTOR_BUDGET} x ideal",
                        f"{ratio:.3f} x ideal ({fmt(wall_s, 1)} s vs {fmt(ideal_s, 1)} s)",
                        ratio <= IDEAL_FACTOR_BUDGET,
                        f"{IDEAL_FACTOR_BUDGET - ratio:.3f} x ideal under the budget"
                        if ratio <= IDEAL_FACTOR_BUDGET
                        else f"{ratio - IDEAL_FACTOR_BUDGET:.3f} x ideal over the budget",
                    )
                )
    table.notes = [
        f"World: `make_world({mode.accounts}, {mode.posts}, seed={SEED})`: {info.posts:,} posts, "
        f"{info.reposts} of them reposts (no insights call). Minimum calls of a first run: "
        f"{mode.accounts} x {math.ceil(mode.posts / PAGE_SIZE)} list pages + "
        f"{info.posts - info.reposts:,} insights = {expected_calls:,}.",
        "Measured: the product's `Collector.run` (first run: empty state, empty sheet) with "
        "`ThreadsClient` on a `build_session` pool, over real HTTP to the Threads simulator on "
        "127.0.0.1, which sleeps the latency in each request thread. The Sheets side is not "
        "part of this phase.",
        "The simulator runs in its own process (`multiprocessing`, spawn) for every C: one Python "
        "process serving both sides tops out near 330 requests/s and would distort C = 16.",
        f"C = 1 ran {mode.serial_accounts} of {mode.accounts} accounts (a full serial run takes "
        f"about calls x latency); its calls and wall time are scaled by "
        f"{expected_calls:,} / calls-run to the whole world (marked scaled).",
        "`max in flight` is the simulator's own count of concurrent requests.",
        "The simulator answers with TCP_NODELAY set (in the benchmark's process only): as "
        "shipped, its handler sends headers and body in two writes and Nagle's algorithm holds "
        "the body until the client's delayed ACK. Measured now, sequential calls at zero "
        f"latency: {fmt(probe[False], 1)} ms each as shipped, {fmt(probe[True], 1)} ms with "
        "TCP_NODELAY; that delay is the simulator's, not the API's or the product's.",
    ]
    return Section([table], verdicts, {"ratios": ratios})


# ==== 2. API economy =============================================================================
@dataclass
class EconomyRun:
    """Threads calls and Sheets requests of one run of the real command."""

    name: str
    list_calls: int
    insights: int
    refresh: int
    minimum_list: int
    minimum_insights: int
    sheets_requests: int
    sheets_by_kind: dict[str, int]

    @property
    def at_minimum(self) -> bool:
        """List and insights calls equal the minimum (refresh calls are counted apart)."""
        return (self.list_calls, self.insights) == (self.minimum_list, self.minimum_insights)


def run_real_sync(stack: LocalStack, **env: str) -> subprocess.CompletedProcess:
    """`python threads_metrics.py` against the simulators; fail loudly on a bad exit."""
    stack.threads.reset_stats()
    stack.sheets.reset_stats()
    process = stack.run_sync(timeout_s=SYNC_TIMEOUT_S, **env)
    if process.returncode != 0:
        tail = (process.stdout + process.stderr)[-2000:]
        raise RuntimeError(f"threads_metrics.py exited {process.returncode}: {tail}")
    return process


def record_run(
    stack: LocalStack, name: str, minimum_list: int, minimum_insights: int
) -> EconomyRun:
    """Read both simulators' counters after a run."""
    threads = stack.threads.stats.by_kind
    sheets = stack.sheets.stats
    return EconomyRun(
        name,
        threads.get("list", 0),
        threads.get("insights", 0),
        threads.get("refresh", 0),
        minimum_list,
        minimum_insights,
        sheets.requests,
        dict(sheets.by_kind),
    )


def insight_posts(world: threads_simulator.ThreadsWorld) -> int:
    """Posts that get an insights call: every listed post except reposts."""
    return sum(
        post.media_type != "REPOST_FACADE"
        for name in world.accounts
        for post in world.posts_of(name)
    )


def add_new_posts(world: threads_simulator.ThreadsWorld, count: int) -> None:
    """Publish count new text posts, spread over the accounts in turn."""
    names = list(world.accounts)
    for number in range(count):
        world.add_post(names[number % len(names)], f"new post {number}", media_type="TEXT_POST")


def economy_runs(
    accounts: int = ECONOMY_ACCOUNTS,
    posts: int = ECONOMY_POSTS,
    new_posts: int = ECONOMY_NEW_POSTS,
    *,
    ttl_run: bool = True,
) -> list[EconomyRun]:
    """First, steady, incremental and (optionally) TTL-expired runs of the real command."""
    world = threads_simulator.make_world(accounts, posts, seed=SEED)
    pages = accounts * max(1, math.ceil(posts / PAGE_SIZE))
    runs: list[EconomyRun] = []
    with tempfile.TemporaryDirectory() as folder, local_stack(world, Path(folder)) as stack:
        run_real_sync(stack)
        runs.append(record_run(stack, "first", pages, insight_posts(world)))
        run_real_sync(stack)
        runs.append(record_run(stack, "steady", accounts, 0))
        add_new_posts(world, new_posts)
        run_real_sync(stack)
        runs.append(record_run(stack, f"incremental (k = {new_posts})", accounts, new_posts))
        if ttl_run:
            run_real_sync(stack, THREADS_METRICS_TTL_MIN="0")
            runs.append(record_run(stack, "TTL expired", accounts, insight_posts(world)))
    return runs


def economy_section() -> Section:
    """API economy: Threads calls per run against the minimum."""
    runs = economy_runs()
    table = Table(
        f"2. API economy ({ECONOMY_ACCOUNTS} accounts x {ECONOMY_POSTS} posts)",
        [
            "run",
            "list",
            "insights",
            "list+insights",
            "minimum",
            "difference",
            "refresh (apart)",
            "Sheets requests",
        ],
    )
    for run in runs:
        used = run.list_calls + run.insights
        minimum = run.minimum_list + run.minimum_insights
        table.rows.append(
            [
                run.name,
                str(run.list_calls),
                str(run.insights),
                str(used),
                f"{minimum} ({run.minimum_list} + {run.minimum_insights})",
                f"{used - minimum:+d}",
                str(run.refresh),
                str(run.sheets_requests),
            ]
        )
    table.notes = [
        f"Measured: `python threads_metrics.py` as a subprocess (`local_stack`: both simulators on "
        f"127.0.0.1, no latency), four runs in a row on one state file and one sheet: first run "
        f"(empty state, no data sheet), steady run (nothing new, TTL of "
        f"{METRICS_TTL_S / 60:.0f} min fresh), incremental run after {ECONOMY_NEW_POSTS} new "
        "posts spread over the accounts, and a run with THREADS_METRICS_TTL_MIN=0 (every "
        "post's insights due, as once an hour with the default TTL).",
        "Minimum: first run = ceil(posts / 100) list pages per account + one insights call per "
        "post that is not a repost; steady = one list call per account, no insights; "
        "incremental = one list call per account + k insights; TTL expired = one list call per "
        "account + every post's insights.",
        "Counts come from the Threads simulator (`world.stats.by_kind`). Refresh calls are "
        "token refreshes: the first run refreshes every token whose expiry the sheet does not "
        "show yet; they are outside the list/insights minimum.",
    ]
    missed = [run for run in runs if not run.at_minimum]
    verdict = Verdict(
        "Threads calls per run",
        "list + insights = minimum on every run",
        "; ".join(
            f"{run.name}: {run.list_calls + run.insights}/{run.minimum_list + run.minimum_insights}"
            for run in runs
        ),
        not missed,
        "0 extra calls"
        if not missed
        else ", ".join(
            f"{run.name} +{run.list_calls + run.insights - run.minimum_list - run.minimum_insights}"
            for run in missed
        ),
    )
    return Section([table], [verdict])


# ==== 3. sheet phase =============================================================================
CORPUS = " ".join(threads_simulator.RU_SENTENCES + threads_simulator.EN_SENTENCES) * 12
OWNED = owned_columns(DEFAULT_POST_FIELDS)
SHEET_HEADER = [*OWNED, *ANALYST_COLUMNS]
BASE_POST_ID = 18 * 10**16
TIMESTAMP = "2025-05-{:02d}T{:02d}:{:02d}:00+0000"
UPDATED = "2025-06-01T12:00:00Z"
FRESH_UPDATED = "2025-06-01T12:10:00Z"


def post_text(rng: random.Random) -> str:
    """A post text with make_world's length mix (60% short, 35% medium, 5% long)."""
    roll = rng.random()
    length = rng.randint(5, 80) if roll < 0.6 else rng.randint(80, 600)
    if roll > 0.95:
        length = rng.randint(600, 3000)
    start = rng.randrange(len(CORPUS) - length)
    return CORPUS[start : start + length]


def post_cells(rng: random.Random, number: int) -> dict[str, Any]:
    """One post's owned cells as the tool writes them and values.get returns them."""
    account = f"user{number % SHEET_ACCOUNTS:04d}"
    post_id = str(BASE_POST_ID + number * 7919)
    shortcode = threads_simulator.shortcode_for(post_id)
    image = rng.random() < 0.1
    metrics = threads_simulator._random_metrics(rng)
    return {
        "account_name": account,
        "post_id": post_id,
        "permalink": f"https://www.threads.net/@{account}/post/{shortcode}",
        "text": post_text(rng),
        "media_type": "IMAGE" if image else "TEXT_POST",
        "media_url": f"{threads_simulator.CDN}/{post_id}.jpg" if image else "",
        "timestamp": TIMESTAMP.format(1 + number % 28, number % 24, number % 60),
        "shortcode": shortcode,
        "username": account,
        "is_quote_post": False,
        **metrics,
        "updated_at": UPDATED,
    }


def analyst_cells(rng: random.Random, number: int) -> list[Any]:
    """Analysts' columns: notes, categories, numbers, formula results (as UNFORMATTED_VALUE)."""
    return [
        rng.choice(["", "", "", "проверить", "в отчёт", "NA", "=A1 текстом"]),
        rng.choice(["news", "promo", "lifestyle", ""]),
        rng.randint(0, 100),
        round(rng.random() * 0.1, 6),
        rng.random() < 0.5,
        "" if number % 3 else f"campaign-{number % 17}",
        rng.randint(0, 50_000),
        rng.randint(0, 900),
    ]


def synthetic_grid(rows: int, seed: int = SEED) -> list[list[Any]]:
    """The data sheet as values.get (UNFORMATTED_VALUE) returns it: header + rows x 25 cells."""
    rng = random.Random(seed)
    grid: list[list[Any]] = [list(SHEET_HEADER)]
    for number in range(rows):
        owned = post_cells(rng, number)
        row = [owned[name] for name in OWNED] + analyst_cells(rng, number)
        while row and row[-1] == "":
            row.pop()  # the API trims trailing blank cells
        grid.append(row)
    return grid


def fresh_records(grid: list[list[Any]], seed: int = SEED) -> list[dict[str, Any]]:
    """What the collector would return: new metrics for 10% of the rows, 1% new posts."""
    rng = random.Random(seed + 1)
    rows = len(grid) - 1
    records: list[dict[str, Any]] = []
    for index in range(1, rows + 1, round(1 / TOUCHED_SHARE)):
        metrics = threads_simulator._random_metrics(rng)
        keys = {"account_name": grid[index][0], "post_id": grid[index][1]}
        records.append({**keys, **metrics, "updated_at": FRESH_UPDATED})
    for number in range(rows, rows + max(1, round(rows * NEW_SHARE))):
        cells = post_cells(rng, number)
        if not cells["media_url"]:
            del cells["media_url"]  # the API leaves out fields a post does not have
        records.append({**cells, "updated_at": FRESH_UPDATED})
    return records


def fresh_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The records as Collector._fresh_frame builds them."""
    return pd.DataFrame.from_records(records).astype(object)


def values_body(grid: list[list[Any]]) -> bytes:
    """The HTTP body of a values.get answer holding grid."""
    payload = {"range": f"'{DATA_SHEET}'!A1:Y{len(grid)}", "majorDimension": "ROWS", "values": grid}
    return json.dumps(payload, ensure_ascii=False).encode()


class MemorySheetsAdapter(BaseAdapter):
    """A requests transport that answers gspread's Sheets calls from memory, never touching the
    network: values.get of the data sheet returns a prepared body; writes are counted and dropped.

    Everything above the transport (gspread, google-auth, requests' JSON encoding) runs for real.
    """

    def __init__(self, data_body: bytes, data_rows: int, accounts_body: bytes) -> None:
        super().__init__()
        self.data_body = data_body
        self.data_rows = data_rows
        self.accounts_body = accounts_body
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.largest_body = 0
        self.keep_bodies = False
        self.write_bodies: list[bytes] = []

    def metadata(self) -> bytes:
        """spreadsheets.get: the accounts tab and the data tab with its grid size."""
        sheets = [
            {"sheetId": 0, "title": ACCOUNTS_SHEET, "rows": 1000, "cols": 26},
            {"sheetId": 7, "title": DATA_SHEET, "rows": self.data_rows, "cols": SHEET_COLUMNS},
        ]
        payload = {
            "spreadsheetId": SPREADSHEET_ID,
            "properties": {"title": "bench"},
            "sheets": [
                {
                    "properties": {
                        "sheetId": sheet["sheetId"],
                        "title": sheet["title"],
                        "index": index,
                        "sheetType": "GRID",
                        "gridProperties": {
                            "rowCount": sheet["rows"],
                            "columnCount": sheet["cols"],
                        },
                    }
                }
                for index, sheet in enumerate(sheets)
            ],
        }
        return json.dumps(payload).encode()

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        """Answer one request from memory."""
        url = unquote(request.url or "")
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        self.bytes_sent += len(body)
        self.largest_body = max(self.largest_body, len(body))
        if request.method == "GET" and "/values/" in url:
            kind = "values_get"
            answer = self.data_body if DATA_SHEET in url else self.accounts_body
        elif request.method == "GET":
            kind, answer = "metadata", self.metadata()
        elif request.method == "PUT":
            kind, answer = "values_update", b"{}"
            if self.keep_bodies:
                self.write_bodies.append(body)
        elif "values:batchUpdate" in url:
            kind, answer = "values_batch_update", b"{}"
        else:
            kind, answer = "batch_update", b'{"replies": []}'
        self.requests[kind] += 1
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        response.encoding = "utf-8"
        response._content = answer
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to close."""


def memory_sink(adapter: MemorySheetsAdapter) -> Any:
    """The product's GoogleSheetsSink on the product's client, with the transport replaced."""
    from google_sheets import GoogleSheetsSink, open_client

    client = open_client(service_account_info("https://oauth2.invalid/token"))
    session = client.http_client.session
    session.credentials.token = "bench-token"  # valid far into the future: no token request
    session.credentials.expiry = datetime(2100, 1, 1)
    session.mount("https://", adapter)
    return GoogleSheetsSink(client, SPREADSHEET_ID)


def direct_cell(value: Any) -> Any:
    """A cell as set_with_dataframe(string_escaping="full") sends it, without its overhead."""
    if isinstance(value, str):
        return "'" + value if value else ""
    if value is None or value != value:
        return ""
    return value


def direct_write_payloads(frame: pd.DataFrame, owned: list[str]) -> list[list[Any]]:
    """The owned columns' cells, header first, built from df.values (the issue's baseline)."""
    columns = [name for name in frame.columns if name in owned]
    values = frame[columns].to_numpy(dtype=object).tolist()
    rows = [[direct_cell(cell) for cell in row] for row in values]
    return [["'" + name for name in columns], *rows]


class StubWorksheet:
    """Just enough of a gspread Worksheet for gspread_dataframe.get_as_dataframe."""

    def __init__(self, body: bytes, rows: int) -> None:
        self.title = DATA_SHEET
        self.row_count = rows
        self.col_count = SHEET_COLUMNS
        self.spreadsheet = self
        self._body = body

    def values_get(self, _range: str, params: dict[str, str]) -> Any:
        """Decode the prepared values.get body (part of the timed work, as in a real read)."""
        return json.loads(self._body)


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    """Run step; (seconds, result)."""
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def proc_status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB, or None off Linux."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
    return None


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from the current RSS (Linux: clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """Peak resident memory of this process: VmHWM on Linux, else getrusage's ru_maxrss.

    ru_maxrss is not used on Linux: a child started by a big process inherits the parent's
    peak through fork and exec, so it would report the benchmark's own memory.
    """
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # KiB on Linux


def current_rss_mb() -> float:
    """Resident memory now (VmRSS), or the peak where that is unknown."""
    return proc_status_mb("VmRSS") or peak_rss_mb()


def sheet_phase_worker(data_file: Path, fresh_file: Path, rows: int, trace: bool) -> dict:
    """In a fresh process: read -> merge -> write payload of the product, timed or traced."""
    data_body = data_file.read_bytes()
    records = json.loads(fresh_file.read_text())
    accounts_body = json.dumps({"values": [["account_name", "access_token"]]}).encode()
    adapter = MemorySheetsAdapter(data_body, rows + 1, accounts_body)
    sink = memory_sink(adapter)
    sink.read_accounts()  # opens the spreadsheet: outside the phase, as in a run
    fresh = fresh_frame(records)
    gc.collect()
    result: dict[str, Any] = {"rows": rows, "values_get_bytes": len(data_body)}
    result["rss_before_mb"] = current_rss_mb()
    reset_peak_rss()
    if trace:
        tracemalloc.start()
    read_s, sheet = timed(sink.read_posts)
    merge_s, merged = timed(lambda: merge_posts(sheet, fresh, OWNED))
    write_s, _ = timed(lambda: sink.write_posts(merged.frame, OWNED))
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"traced_peak_mb": peak / MB}
    result.update(
        read_s=read_s,
        merge_s=merge_s,
        write_s=write_s,
        rss_peak_mb=peak_rss_mb(),
        new_rows=merged.new_rows,
        updated_rows=merged.updated_rows,
        requests=dict(adapter.requests),
        bytes_sent=adapter.bytes_sent,
        largest_body=adapter.largest_body,
    )
    result.update(compare_alternatives(data_body, rows, merged.frame, sink, adapter))
    return result


def compare_alternatives(
    data_body: bytes, rows: int, frame: pd.DataFrame, sink: Any, adapter: MemorySheetsAdapter
) -> dict[str, Any]:
    """The issue's comparison points, on the same data, after the product's phase was measured."""
    from gspread_dataframe import get_as_dataframe

    def direct_read() -> pd.DataFrame:
        values = json.loads(data_body)["values"]
        return pd.DataFrame(values[1:], columns=values[0])

    gdf_read_s, _ = timed(lambda: get_as_dataframe(StubWorksheet(data_body, rows + 1)))
    direct_read_s, _ = timed(direct_read)
    direct_write_s, direct = timed(
        lambda: json.dumps({"values": direct_write_payloads(frame, OWNED)}).encode()
    )
    # Check that the direct build is the same payload the product sends.
    adapter.keep_bodies = True
    sink.write_posts(frame, OWNED)
    sent = [cell for body in adapter.write_bodies for cell in json.loads(body)["values"]]
    return {
        "gdf_read_s": gdf_read_s,
        "direct_read_s": direct_read_s,
        "direct_write_s": direct_write_s,
        "direct_same_payload": sent == json.loads(direct)["values"],
    }


def run_sheet_phase(rows: int, folder: Path) -> dict[str, Any]:
    """Prepare the sheet for rows, then time and trace it in two fresh subprocesses."""
    grid = synthetic_grid(rows)
    data_file, fresh_file = folder / f"values_{rows}.json", folder / f"fresh_{rows}.json"
    data_file.write_bytes(values_body(grid))
    fresh_file.write_text(json.dumps(fresh_records(grid)))
    del grid
    result: dict[str, Any] = {}
    for trace in (False, True):
        command = [
            sys.executable,
            str(ROOT / "bench.py"),
            "--sheet-phase-worker",
            str(data_file),
            str(fresh_file),
            str(rows),
        ]
        if trace:
            command.append("--trace")
        process = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), check=False
        )
        if process.returncode != 0:
            raise RuntimeError(f"sheet phase worker failed: {process.stderr[-2000:]}")
        result.update(json.loads(process.stdout.strip().splitlines()[-1]))
    return result


def sheet_phase_section(mode: Mode) -> Section:
    """Sheet phase: time and peak memory of read -> merge -> write payload per sheet size."""
    timing = Table(
        "3. Sheet phase: read -> merge -> write payload (network excluded)",
        [
            "rows",
            "values.get MB",
            "read s",
            "merge s",
            "write s",
            "total s",
            "peak RSS MB",
            "RSS at start MB",
            "traced peak MB",
        ],
    )
    gap = Table(
        "3b. Sheet phase: the product against the direct builds (same data)",
        [
            "rows",
            "read: product s",
            "read: get_as_dataframe s",
            "read: values.get -> DataFrame s",
            "write: product s",
            "write: from df.values s",
            "write gap s",
            "same payload",
        ],
    )
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for rows in mode.sheet_rows:
            result = run_sheet_phase(rows, Path(folder))
            results[rows] = result
            total = result["read_s"] + result["merge_s"] + result["write_s"]
            timing.rows.append(
                [
                    f"{rows:,}",
                    fmt(result["values_get_bytes"] / MB, 1),
                    fmt(result["read_s"]),
                    fmt(result["merge_s"]),
                    fmt(result["write_s"]),
                    fmt(total),
                    fmt(result["rss_peak_mb"], 0),
                    fmt(result["rss_before_mb"], 0),
                    fmt(result["traced_peak_mb"], 0),
                ]
            )
            gap.rows.append(
                [
                    f"{rows:,}",
                    fmt(result["read_s"]),
                    fmt(result["gdf_read_s"]),
                    fmt(result["direct_read_s"]),
                    fmt(result["write_s"]),
                    fmt(result["direct_write_s"]),
                    fmt(result["write_s"] - result["direct_write_s"]),
                    "yes" if result["direct_same_payload"] else "NO",
                ]
            )
    timing.notes = [
        f"Sheet: N rows x {SHEET_COLUMNS} columns as values.get (UNFORMATTED_VALUE) returns "
        f"them: the {len(OWNED)} owned columns (18-digit ids as text, post texts of 5-3,000 "
        f"characters, mostly Cyrillic, metrics, updated_at) and {len(ANALYST_COLUMNS)} analyst "
        "columns to their right (notes, categories, numbers, formula results, booleans). Fresh "
        f"frame: new metrics for {TOUCHED_SHARE:.0%} of the rows and {NEW_SHARE:.0%} new posts.",
        "Timed: `GoogleSheetsSink.read_posts()` (values.get body -> JSON decode -> "
        "`grid_to_frame`), `merge_posts()`, `GoogleSheetsSink.write_posts()` (`column_blocks`, "
        '`row_chunks`, `set_with_dataframe(string_escaping="full")` per chunk, gspread, '
        "requests' JSON encoding, the formatting batchUpdate). The product's own client and "
        "session are used; only the transport under requests is replaced by an in-memory "
        "adapter that answers values.get with the prepared body and drops writes, so no "
        "network and no server time is in the numbers.",
        "Each size runs in two fresh subprocesses. The timed one reports peak RSS: the "
        "process's high-water mark (Linux VmHWM, reset when the phase starts) during the "
        "phase, so the whole process counts: interpreter, libraries, the values.get body "
        "already received (`RSS at start` = resident memory when the phase starts). "
        "`getrusage().ru_maxrss` is not used on Linux: a child inherits its parent's peak "
        "through fork and exec. The other subprocess runs the phase under `tracemalloc` "
        "(Python and numpy allocations made during the phase; slower, so not timed).",
    ]
    gap.notes = [
        "`get_as_dataframe`: gspread-dataframe 4.0.0's reader (pandas TextParser) on the same "
        "values.get body; `values.get -> DataFrame`: `json.loads` + `pd.DataFrame(values)`. "
        "`from df.values`: the same cells as `set_with_dataframe` sends ('-prefixed text, "
        "numbers as numbers, blanks as empty), built with one list comprehension over "
        "`df.values` and JSON-encoded; `same payload` checks it cell by cell against what the "
        "product sent.",
    ]
    verdicts = [sheet_phase_verdict(results)]
    largest = results[max(results)]
    phase_s = largest["read_s"] + largest["merge_s"] + largest["write_s"]
    return Section([timing, gap], verdicts, {"phase_s": (max(results), phase_s)})


def sheet_phase_verdict(results: dict[int, dict[str, Any]]) -> Verdict:
    """The 50k-row budget, or n/a when that size was not run."""
    budget = f"{SHEET_BUDGET_ROWS:,} rows: <= {SHEET_BUDGET_S:.0f} s, <= {SHEET_BUDGET_MB:.0f} MB"
    result = results.get(SHEET_BUDGET_ROWS)
    if result is None:
        return Verdict("sheet phase", budget, "not run (use --full)", None, "")
    total = result["read_s"] + result["merge_s"] + result["write_s"]
    peak = result["rss_peak_mb"]
    passed = total <= SHEET_BUDGET_S and peak <= SHEET_BUDGET_MB
    time_margin = (SHEET_BUDGET_S - total) / SHEET_BUDGET_S
    memory_margin = (SHEET_BUDGET_MB - peak) / SHEET_BUDGET_MB
    return Verdict(
        "sheet phase",
        budget,
        f"{fmt(total)} s, {fmt(peak, 0)} MB peak RSS",
        passed,
        f"time {time_margin:+.0%}, memory {memory_margin:+.0%} of the budget left",
        f"write {fmt(result['write_s'])} s, of which building the payload from df.values "
        f"would take {fmt(result['direct_write_s'])} s",
    )


# ==== 4. Sheets requests and bytes per run =======================================================
def sheets_world_with_rows(rows: int) -> sheets_simulator.SheetsWorld:
    """A Sheets simulator whose data sheet already holds a synthetic sheet of rows."""
    world = sheets_simulator.SheetsWorld(require_auth=True)
    world.create_spreadsheet(SPREADSHEET_ID, (ACCOUNTS_SHEET,))
    if rows:
        grid = synthetic_grid(rows)
        world.add_sheet(SPREADSHEET_ID, DATA_SHEET, rows=rows + 1, cols=SHEET_COLUMNS)
        world.set_values(SPREADSHEET_ID, DATA_SHEET, grid, input_option="RAW")
    return world


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


def sheets_runs(
    rows: int,
    accounts: int = ECONOMY_ACCOUNTS,
    posts: int = ECONOMY_POSTS,
    new_posts: int = ECONOMY_NEW_POSTS,
) -> list[SheetsRun]:
    """First, steady and incremental runs of the real command against an N-row sheet."""
    threads_world = threads_simulator.make_world(accounts, posts, seed=SEED)
    sheets_world = sheets_world_with_rows(rows)
    runs: list[SheetsRun] = []
    with (
        tempfile.TemporaryDirectory() as folder,
        local_stack(threads_world, Path(folder), sheets_world) as stack,
    ):
        for name in ("first", "steady", "incremental"):
            if name == "incremental":
                add_new_posts(threads_world, new_posts)
            run_real_sync(stack)
            stats = stack.sheets.stats
            runs.append(
                SheetsRun(
                    rows,
                    name,
                    stats.requests,
                    stats.writes,
                    dict(stats.by_kind),
                    stats.bytes_received,
                    stats.largest_request_body,
                )
            )
    return runs


SHEETS_KINDS = (
    "token",
    "metadata",
    "values_get",
    "values_update",
    "values_batch_update",
    "batch_update",
)
SHEETS_WRITE_QUOTA_PER_MIN = 60  # write requests per minute per user (a service account is one)


def sheets_section(mode: Mode) -> Section:
    """Sheets requests and bytes per run at each sheet size."""
    table = Table(
        "4. Sheets requests and bytes per run (Sheets simulator on 127.0.0.1)",
        [
            "rows before",
            "run",
            "requests",
            "writes",
            *SHEETS_KINDS,
            "fixed",
            "MB sent",
            "largest MB",
        ],
    )
    by_run: dict[str, list[SheetsRun]] = {}
    for rows in mode.sheet_rows:
        for run in sheets_runs(rows):
            by_run.setdefault(run.name, []).append(run)
            table.rows.append(
                [
                    f"{rows:,}",
                    run.name,
                    str(run.requests),
                    str(run.writes),
                    *(str(run.by_kind.get(kind, 0)) for kind in SHEETS_KINDS),
                    str(run.fixed_requests),
                    fmt(run.bytes_sent / MB),
                    fmt(run.largest_body / MB),
                ]
            )
    table.notes = [
        f"Measured: `python threads_metrics.py` as a subprocess (`local_stack`) with "
        f"{ECONOMY_ACCOUNTS} accounts x {ECONOMY_POSTS} posts in the Threads simulator, against "
        "the Sheets simulator whose data sheet already holds the synthetic sheet of section 3 "
        "(N rows x 25 columns). Three runs in a row: first (empty state: every token is "
        f"refreshed, {ECONOMY_ACCOUNTS * ECONOMY_POSTS} posts are new), steady (nothing new: no "
        f"data write), incremental ({ECONOMY_NEW_POSTS} new posts: the whole owned block is "
        "written again).",
        "Counts and bytes are the simulator's (`SheetsWorld.stats`: requests by kind, write "
        "requests (token excluded), request bodies received). `values_update` = the data "
        f"sheet's chunks of about {WRITE_CHUNK_BYTES / MB:.0f} MB; `fixed` = requests - chunks. "
        "Reads are not in `MB sent`: each run downloads the data sheet twice (before the fetch "
        "and again just before the write) and the accounts sheet two or three times.",
        f"Quota: {SHEETS_WRITE_QUOTA_PER_MIN} write requests per minute per user; a run whose "
        "`writes` pass it within one minute gets 429 answers, which the retry policy waits "
        "out (4, 8, 16, 32 s).",
    ]
    small, large = by_run["incremental"][0], by_run["incremental"][-1]
    per_chunk = (large.writes - small.writes) / max(1, large.chunks - small.chunks)
    facts = {
        "bytes_per_row": large.bytes_sent / (large.rows + ECONOMY_ACCOUNTS * ECONOMY_POSTS),
        "writes_per_chunk": per_chunk,
        "writes_besides_chunks": large.writes - per_chunk * large.chunks,
    }
    return Section([table], [sheets_verdict(by_run)], facts)


def sheets_verdict(by_run: dict[str, list[SheetsRun]]) -> Verdict:
    """Requests per run, apart from the chunks, must not depend on the sheet's size."""
    growth = {
        name: runs[-1].fixed_requests - runs[0].fixed_requests
        for name, runs in by_run.items()
        if len(runs) > 1
    }
    measured = "; ".join(
        f"{name}: {'/'.join(str(run.fixed_requests) for run in runs)}"
        for name, runs in by_run.items()
    )
    largest = {name: runs[-1] for name, runs in by_run.items()}
    resizes = all(
        run.by_kind.get("batch_update", 0) - run.chunks
        == runs[0].by_kind.get("batch_update", 0) - runs[0].chunks
        for runs in by_run.values()
        for run in runs
    )
    grown = {name: extra for name, extra in growth.items() if extra}
    worst = max(largest.values(), key=lambda run: run.writes)
    why = ""
    if grown and resizes:
        why = (
            "Every chunk also sends a spreadsheets.batchUpdate: `set_with_dataframe` "
            "(google_sheets.py, `write_posts`) resizes the grid before each call, even when it "
            "is already large enough, so a chunked write costs two write requests per chunk. "
            f"At {worst.rows:,} rows that is {worst.writes} write requests in one run against a "
            f"quota of {SHEETS_WRITE_QUOTA_PER_MIN} per minute. Sending each chunk's values "
            "(the same payload, built from df.values as in section 3b) with one values.update "
            f"or values.batchUpdate would drop {worst.chunks} of them, and the CPU gap of "
            "section 3b with them."
        )
    ordered = next(iter(by_run.values()))
    sizes = "/".join(f"{run.rows:,}" for run in ordered)
    span = f"{ordered[0].rows:,} to {ordered[-1].rows:,}"
    return Verdict(
        "Sheets requests per run",
        "constant apart from ~2 MB write chunks",
        f"requests besides the chunks at {sizes} rows: {measured}; most writes in a run: "
        f"{worst.writes} ({worst.rows:,} rows, {worst.name})",
        not grown,
        "constant across sizes"
        if not grown
        else "grows with the chunks: "
        + ", ".join(f"{name} +{extra}" for name, extra in grown.items())
        + f" from {span} rows",
        why,
    )


# ==== 5. what fits in a 10-minute cadence (derived) ==============================================
CADENCE_S = 600
SHEETS_RESERVE_S = 120  # left for the Sheets side of a run: reads, merge, chunked writes
CAPACITY_LATENCIES_S = (0.1, 0.25, 0.5)
CAPACITY_ACCOUNTS = (20, 100)
DAILY_CALLS_FLOOR = 48_000  # 4,800 x impressions per 24 h, impressions floored at 10
RUNS_PER_DAY = 24 * 3600 // CADENCE_S
TTL_RUNS_PER_DAY = 24 * 3600 // int(METRICS_TTL_S)


def capacity_section(facts: dict[str, Any]) -> Section:
    """Derived from the measurements: accounts x posts that fit one run, and the quotas."""
    ratios: dict[int, float] = facts["ratios"]
    table = Table(
        "5. What fits in a 10-minute cadence (derived from the measurements above)",
        [
            "latency ms",
            "C",
            "measured wall/ideal",
            "calls in one run",
            *(f"posts each, {accounts} accounts" for accounts in CAPACITY_ACCOUNTS),
        ],
    )
    for latency_s in CAPACITY_LATENCIES_S:
        for concurrency in (BUDGET_CONCURRENCY, max(ratios)):
            ratio = ratios[concurrency]
            calls = int((CADENCE_S - SHEETS_RESERVE_S) * concurrency / (latency_s * ratio))
            table.rows.append(
                [
                    f"{latency_s * 1000:.0f}",
                    str(concurrency),
                    fmt(ratio),
                    f"{calls:,}",
                    *(f"{calls // accounts - 1:,}" for accounts in CAPACITY_ACCOUNTS),
                ]
            )
    per_account = (DAILY_CALLS_FLOOR - RUNS_PER_DAY) // TTL_RUNS_PER_DAY
    table.notes = [
        "With the default THREADS_METRICS_TTL_MIN=60 every post's insights come due in the same "
        "run once an hour (the first run fetched them together), so that run must fit the "
        "cadence: A accounts x P posts cost A list calls + A x P insights calls. `calls in one "
        f"run` = ({CADENCE_S} s - {SHEETS_RESERVE_S} s left for Sheets) x C / (latency x "
        "measured wall/ideal at 100 ms); a higher latency hides the per-call overhead better, "
        "so these are conservative.",
        f"Threads budget per account: {RUNS_PER_DAY} runs a day x 1 list call + "
        f"{TTL_RUNS_PER_DAY} TTL refreshes x P insights <= {DAILY_CALLS_FLOOR:,} calls "
        f"(4,800 x impressions, impressions floored at 10): P <= {per_account:,} posts per "
        "account at the floor, more with more impressions; new posts add one call each.",
    ]
    if "bytes_per_row" in facts:
        rows_per_chunk = WRITE_CHUNK_BYTES / facts["bytes_per_row"]
        per_chunk, fixed = facts["writes_per_chunk"], facts["writes_besides_chunks"]
        now = (SHEETS_WRITE_QUOTA_PER_MIN - fixed) / per_chunk * rows_per_chunk
        one_per_chunk = (SHEETS_WRITE_QUOTA_PER_MIN - fixed) * rows_per_chunk
        table.notes.append(
            f"Sheets: a write sends about {facts['bytes_per_row']:,.0f} bytes per row, so about "
            f"{rows_per_chunk:,.0f} rows per 2 MB chunk, and costs {per_chunk:.0f} write "
            f"request(s) per chunk + {fixed:.0f}: a run that writes reaches "
            f"{SHEETS_WRITE_QUOTA_PER_MIN} write requests at about {now:,.0f} rows (about "
            f"{one_per_chunk:,.0f} with one request per chunk). Whether they fall within one "
            "minute depends on how fast Google takes 2 MB requests; past the quota the run "
            "slows down on 429 answers but completes."
        )
    if "phase_s" in facts:
        rows, seconds = facts["phase_s"]
        table.notes.append(
            f"The sheet phase's own CPU time is {fmt(seconds, 1)} s at {rows:,} rows (section 3)."
        )
    return Section([table], [])


# ==== report =====================================================================================
def machine_lines() -> list[str]:
    """What machine and software the numbers were measured on."""
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("pandas", "numpy", "gspread", "gspread-dataframe", "requests", "urllib3")
    )
    return [
        f"- Platform: {platform.platform()}",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {packages}",
    ]


def verdict_table(verdicts: list[Verdict]) -> Table:
    """Every budget with PASS/MISS and the margin."""
    table = Table("Budgets", ["budget", "limit", "measured", "result", "margin"])
    for verdict in verdicts:
        table.rows.append(
            [verdict.name, verdict.budget, verdict.measured, verdict.label, verdict.margin]
        )
    return table


def render_markdown(
    mode: Mode, sections: list[Section], started: datetime, duration_s: float, command: str
) -> str:
    """The Markdown report: how it was run, the machine, each table, each budget."""
    verdicts = [verdict for section in sections for verdict in section.verdicts]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({mode.name} mode, "
        f"{duration_s / 60:.1f} min). Regenerate with `python bench.py --full` (about 8 min on "
        "2 cores) or `python bench.py` (`--quick`, about 1.5 min); either rewrites this file. "
        "Wall-clock numbers vary from run to run by a few percent; the counts do not.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Budgets",
        "",
        markdown_table(verdict_table(verdicts)),
        "",
    ]
    for section in sections:
        for table in section.tables:
            lines += [f"## {table.title}", "", markdown_table(table), ""]
            lines += [f"- {note}" for note in table.notes] + [""]
    misses = [verdict for verdict in verdicts if verdict.passed is False]
    lines += ["## Closing note", ""]
    if not misses:
        lines.append("Every budget measured in this mode is met.")
    for verdict in misses:
        lines.append(
            f"- **{verdict.name}** missed: {verdict.measured} against {verdict.budget} "
            f"({verdict.margin}). {verdict.why}"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark Threads Metrics against its budgets (simulators on 127.0.0.1)."
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const=QUICK,
        help="small sizes, under 2 minutes (the default)",
    )
    sizes.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const=FULL,
        help="the sizes issue 7 states (about 8 minutes on 2 cores)",
    )
    parser.set_defaults(mode=QUICK)
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the Markdown report (default: docs/benchmarks.md)",
    )
    parser.add_argument(
        "--only",
        choices=("collection", "economy", "sheet", "requests"),
        action="append",
        help="run only these sections (repeatable); the report then holds only them",
    )
    parser.add_argument("--sheet-phase-worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return parser


SECTIONS: dict[str, Callable[[Mode], Section]] = {
    "collection": collection_section,
    "economy": lambda _mode: economy_section(),
    "sheet": sheet_phase_section,
    "requests": sheets_section,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print their tables and write the report."""
    args = build_parser().parse_args(argv)
    if args.sheet_phase_worker:
        data_file, fresh_file, rows = args.sheet_phase_worker
        result = sheet_phase_worker(Path(data_file), Path(fresh_file), int(rows), args.trace)
        print(json.dumps(result))
        return 0
    mode: Mode = args.mode
    started = datetime.now(UTC)
    clock = time.perf_counter()
    sections: list[Section] = []
    for name in args.only or list(SECTIONS):
        print(f"[bench] {name} ({mode.name}) ...", file=sys.stderr, flush=True)
        section = SECTIONS[name](mode)
        sections.append(section)
        for table in section.tables:
            print(plain_table(table) + "\n", flush=True)
    facts = {key: value for section in sections for key, value in section.facts.items()}
    if "ratios" in facts:
        capacity = capacity_section(facts)
        sections.append(capacity)
        print(plain_table(capacity.tables[0]) + "\n")
    verdicts = [verdict for section in sections for verdict in section.verdicts]
    print(plain_table(verdict_table(verdicts)))
    command = "python bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render_markdown(mode, sections, started, time.perf_counter() - clock, command.strip())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
