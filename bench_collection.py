"""Collection scaling (benchmark section 1): the product's Collector over real HTTP against the
Threads simulator with injected latency, at several THREADS_CONCURRENCY values; wall time
against the ideal ceil(calls / C) x latency."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import pandas as pd

import threads_simulator
from accounts import Account
from bench_report import Section, Table, Verdict, fmt
from bench_sheet_data import SEED
from collect import REPOST, Collector
from config import DEFAULT_POST_FIELDS
from http_session import build_session
from run_control import RunControl
from run_stats import RunStats
from state_store import empty_state
from threads_api import PAGE_LIMIT, ThreadsClient

LATENCY_S = 0.1
CONCURRENCIES = (1, 4, 8, 16)
BUDGET_CONCURRENCY = 8
IDEAL_FACTOR_BUDGET = 1.2  # wall time within 1.2 x ideal at BUDGET_CONCURRENCY
REQUEST_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 3600.0
METRICS_TTL_S = 3600.0
FIRST_ACCOUNT_ROW = 2  # accounts_threads rows start under the header
STOP_WAIT_S = 10


@dataclass
class WorldInfo:
    """What the simulator process reports about its world."""

    base_url: str
    accounts: list[tuple[str, str]]  # (username, token)
    posts: int
    reposts: int

    def minimum_calls(self, posts_per_account: int) -> int:
        """List pages of every account + one insights call per post that is not a repost."""
        pages = math.ceil(posts_per_account / PAGE_LIMIT)
        return len(self.accounts) * pages + self.posts - self.reposts


def counters(world: threads_simulator.ThreadsWorld) -> dict[str, Any]:
    """The simulator's counters, as plain data that crosses the process boundary."""
    stats = world.stats
    return {
        "by_kind": dict(stats.by_kind),
        "total": stats.total,
        "max_in_flight": stats.max_in_flight,
    }


def serve_world(connection: Connection, accounts: int, posts: int, latency_s: float) -> None:
    """Child process: serve make_world(accounts, posts) with latency; answer stats/reset/stop."""
    world = threads_simulator.make_world(accounts, posts, seed=SEED)
    world.faults = threads_simulator.FaultPlan(latency_s=latency_s)
    all_posts = [post for name in world.accounts for post in world.posts_of(name)]
    with threads_simulator.serve(world) as server:
        tokens = [(name, account.token) for name, account in world.accounts.items()]
        reposts = sum(post.media_type == REPOST for post in all_posts)
        connection.send(WorldInfo(server.base_url, tokens, len(all_posts), reposts))
        while (command := connection.recv()) != "stop":
            if command == "reset":
                world.reset_stats()
            connection.send(counters(world))
        connection.send("bye")


class WorldProcess:
    """The Threads simulator in its own process, so its CPU does not compete with the client's
    GIL (one process serving both tops out near 330 requests/s and would distort C = 16).
    A context manager: the process stops when the with-block ends."""

    def __init__(self, accounts: int, posts: int, latency_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(
            target=serve_world, args=(child, accounts, posts, latency_s), daemon=True
        )
        self._process.start()
        self.info: WorldInfo = self._connection.recv()

    def ask(self, command: str) -> Any:
        """Send "stats", "reset" (both answer the counters) or "stop"; return the answer."""
        self._connection.send(command)
        return self._connection.recv()

    def stop(self) -> None:
        """Stop serving and wait for the process to end."""
        with contextlib.suppress(OSError, EOFError):
            self.ask("stop")
        self._process.join(timeout=STOP_WAIT_S)
        if self._process.is_alive():
            self._process.terminate()

    def __enter__(self) -> WorldProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def collect_once(base_url: str, accounts: list[Account], concurrency: int) -> tuple[float, int]:
    """Run the product's Collector on a first run (empty state and sheet); (wall s, calls)."""
    control, stats = RunControl(RUN_TIMEOUT_S), RunStats()
    with build_session(REQUEST_TIMEOUT_S, pool_size=concurrency) as session:
        client = ThreadsClient(
            base_url, session, control, concurrency, DEFAULT_POST_FIELDS, stats=stats
        )
        collector = Collector(client, empty_state(), pd.DataFrame(), METRICS_TTL_S, stats, control)
        started = time.perf_counter()
        result = collector.run(accounts, concurrency)
        wall_s = time.perf_counter() - started
    failed = {name: outcome.error for name, outcome in result.outcomes.items() if outcome.error}
    if failed:
        raise RuntimeError(f"collection failed for {failed}")
    return wall_s, client.calls


@dataclass
class CollectionRun:
    """One collection at one concurrency, scaled to the whole world when it ran on a part."""

    concurrency: int
    accounts_run: int
    by_kind: dict[str, int]
    max_in_flight: int
    calls: float
    wall_s: float
    requests_per_s: float
    scaled: bool

    def ideal_s(self, latency_s: float) -> float:
        """ceil(calls / C) x latency: every slot busy all the time, no overhead."""
        return math.ceil(self.calls / self.concurrency) * latency_s


def measure(server: WorldProcess, concurrency: int, count: int, posts: int) -> CollectionRun:
    """Collect the first count accounts at one concurrency; scale a partial run to all."""
    accounts = [
        Account(name, token, row)
        for row, (name, token) in enumerate(server.info.accounts[:count], FIRST_ACCOUNT_ROW)
    ]
    server.ask("reset")
    wall_s, calls = collect_once(server.info.base_url, accounts, concurrency)
    stats = server.ask("stats")
    if stats["total"] != calls:
        raise RuntimeError(f"client counted {calls} calls, simulator served {stats['total']}")
    scaled = count < len(server.info.accounts)
    scale = server.info.minimum_calls(posts) / calls if scaled else 1.0
    return CollectionRun(
        concurrency,
        count,
        stats["by_kind"],
        stats["max_in_flight"],
        calls * scale,
        wall_s * scale,
        calls / wall_s,
        scaled,
    )


def collection_row(run: CollectionRun, accounts: int, latency_s: float) -> list[str]:
    """One concurrency's row of table 1."""
    mark = " (scaled)" if run.scaled else ""
    ideal_s = run.ideal_s(latency_s)
    return [
        str(run.concurrency),
        f"{run.accounts_run} of {accounts}",
        f"{run.by_kind.get('list', 0):,}",
        f"{run.by_kind.get('insights', 0):,}",
        f"{run.calls:,.0f}{mark}",
        fmt(ideal_s, 1),
        fmt(run.wall_s, 1) + mark,
        fmt(run.wall_s / ideal_s),
        fmt(run.requests_per_s, 0),
        f"{run.max_in_flight} (cap {run.concurrency})",
    ]


def run_verdicts(run: CollectionRun, latency_s: float) -> list[Verdict]:
    """The concurrency cap at every C, and the wall-time budget at BUDGET_CONCURRENCY."""
    verdicts = []
    if run.max_in_flight > run.concurrency:
        cap = run.concurrency
        over = f"{run.max_in_flight - cap} over the cap"
        measured = str(run.max_in_flight)
        verdicts.append(
            Verdict(f"requests in flight at C = {cap}", f"<= {cap}", measured, False, over)
        )
    if run.concurrency == BUDGET_CONCURRENCY:
        ideal_s = run.ideal_s(latency_s)
        ratio = run.wall_s / ideal_s
        margin = IDEAL_FACTOR_BUDGET - ratio
        verdicts.append(
            Verdict(
                f"collection wall time at C = {BUDGET_CONCURRENCY}",
                f"<= {IDEAL_FACTOR_BUDGET} x ideal",
                f"{ratio:.3f} x ideal ({fmt(run.wall_s, 1)} s vs {fmt(ideal_s, 1)} s)",
                margin >= 0,
                f"{abs(margin):.3f} x ideal {'under' if margin >= 0 else 'over'} the budget",
            )
        )
    return verdicts


def collection_notes(info: WorldInfo, posts: int, serial_accounts: int) -> list[str]:
    """What table 1 measured, in sentences."""
    accounts = len(info.accounts)
    return [
        f"World: `make_world({accounts}, {posts}, seed={SEED})`: {info.posts:,} posts, "
        f"{info.reposts} of them reposts (no insights call). Minimum calls of a first run: "
        f"{accounts} x {math.ceil(posts / PAGE_LIMIT)} list pages + "
        f"{info.posts - info.reposts:,} insights = {info.minimum_calls(posts):,}.",
        "Measured: the product's `Collector.run` (first run: empty state, empty sheet) with "
        "`ThreadsClient` on a `build_session` pool, over real HTTP to the Threads simulator on "
        "127.0.0.1, which sleeps the latency in each request thread and answers without Nagle's "
        "delay (`sim_http` sets TCP_NODELAY). The Sheets side is not part of this phase.",
        "The simulator runs in its own process (`multiprocessing`, spawn): one Python process "
        "serving both sides tops out near 330 requests/s and would distort C = 16.",
        f"C = 1 ran {serial_accounts} of {accounts} accounts (a full serial run takes about "
        "calls x latency); its calls and wall time are scaled to the whole world (marked "
        "scaled). `max in flight` is the simulator's own count of concurrent requests.",
    ]


def collection_section(
    accounts: int, posts: int, serial_accounts: int, latency_s: float = LATENCY_S
) -> Section:
    """Collection scaling: wall time against ceil(calls / C) x latency for each C."""
    table = Table(
        f"1. Collection scaling ({accounts} accounts x {posts} posts, "
        f"{latency_s * 1000:.0f} ms per request)",
        ["C", "accounts run", "list", "insights", "calls", "ideal s", "wall s", "wall/ideal"]
        + ["req/s", "max in flight"],
    )
    verdicts: list[Verdict] = []
    ratios: dict[int, float] = {}
    with WorldProcess(accounts, posts, latency_s) as server:
        for concurrency in CONCURRENCIES:
            count = serial_accounts if concurrency == 1 else accounts
            run = measure(server, concurrency, count, posts)
            ratios[concurrency] = run.wall_s / run.ideal_s(latency_s)
            table.rows.append(collection_row(run, accounts, latency_s))
            verdicts += run_verdicts(run, latency_s)
        table.notes = collection_notes(server.info, posts, serial_accounts)
    return Section([table], verdicts, {"ratios": ratios})
