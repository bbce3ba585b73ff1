"""API economy (benchmark section 2): Threads calls of the real command per run, against the
minimum, on a first, a steady, an incremental and a TTL-expired run.

Also holds what section 4 shares with it: running `threads_metrics.py` against `local_stack`
and publishing new posts between runs.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import threads_simulator
from bench_report import Section, Table, Verdict
from bench_sheet_data import SEED
from collect import REPOST
from local_stack import LocalStack, local_stack
from threads_api import PAGE_LIMIT

ACCOUNTS, POSTS, NEW_POSTS = 5, 100, 7
SYNC_TIMEOUT_S = 900.0
DEFAULT_TTL_MIN = 60  # THREADS_METRICS_TTL_MIN's default: steady runs fetch no insights


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
    def used(self) -> int:
        """List and insights calls (refresh calls are counted apart)."""
        return self.list_calls + self.insights

    @property
    def minimum(self) -> int:
        """The fewest list and insights calls that can do the run's work."""
        return self.minimum_list + self.minimum_insights

    @property
    def at_minimum(self) -> bool:
        """List and insights calls equal the minimum, each of them."""
        return (self.list_calls, self.insights) == (self.minimum_list, self.minimum_insights)


def run_real_sync(stack: LocalStack, **env: str) -> subprocess.CompletedProcess:
    """`python threads_metrics.py` against the simulators, counters reset; fail on a bad exit."""
    stack.threads.reset_stats()
    stack.sheets.reset_stats()
    process = stack.run_sync(timeout_s=SYNC_TIMEOUT_S, **env)
    if process.returncode != 0:
        tail = (process.stdout + process.stderr)[-2000:]
        raise RuntimeError(f"threads_metrics.py exited {process.returncode}: {tail}")
    return process


def insight_posts(world: threads_simulator.ThreadsWorld) -> int:
    """Posts that get an insights call: every listed post except reposts (they have none)."""
    return sum(
        post.media_type != REPOST for name in world.accounts for post in world.posts_of(name)
    )


def add_new_posts(world: threads_simulator.ThreadsWorld, count: int) -> None:
    """Publish count new text posts, spread over the accounts in turn."""
    names = list(world.accounts)
    for number in range(count):
        world.add_post(names[number % len(names)], f"new post {number}", media_type="TEXT_POST")


def record_run(
    stack: LocalStack, name: str, minimum_list: int, minimum_insights: int
) -> EconomyRun:
    """Read both simulators' counters after a run."""
    threads, sheets = stack.threads.stats.by_kind, stack.sheets.stats
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


def economy_runs(
    accounts: int = ACCOUNTS,
    posts: int = POSTS,
    new_posts: int = NEW_POSTS,
    *,
    ttl_run: bool = True,
) -> list[EconomyRun]:
    """First, steady, incremental and (optionally) TTL-expired runs of the real command."""
    world = threads_simulator.make_world(accounts, posts, seed=SEED)
    pages = accounts * max(1, math.ceil(posts / PAGE_LIMIT))
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


def economy_table(runs: list[EconomyRun]) -> Table:
    """Table 2 with its notes."""
    table = Table(
        f"2. API economy ({ACCOUNTS} accounts x {POSTS} posts)",
        ["run", "list", "insights", "list+insights", "minimum", "difference"]
        + ["refresh (apart)", "Sheets requests"],
    )
    for run in runs:
        table.rows.append(
            [
                run.name,
                str(run.list_calls),
                str(run.insights),
                str(run.used),
                f"{run.minimum} ({run.minimum_list} + {run.minimum_insights})",
                f"{run.used - run.minimum:+d}",
                str(run.refresh),
                str(run.sheets_requests),
            ]
        )
    table.notes = [
        "Measured: `python threads_metrics.py` as a subprocess (`local_stack`: both simulators on "
        "127.0.0.1, no latency), four runs in a row on one state file and one sheet: first run "
        f"(empty state, no data sheet), steady run (nothing new, TTL of {DEFAULT_TTL_MIN} min "
        f"fresh), incremental run after {NEW_POSTS} new posts spread over the accounts, and a "
        "run with THREADS_METRICS_TTL_MIN=0 (every post's insights due, as once an hour with the "
        "default TTL).",
        f"Minimum: first run = ceil(posts / {PAGE_LIMIT}) list pages per account + one insights "
        "call per post that is not a repost; steady = one list call per account, no insights; "
        "incremental = one list call per account + k insights; TTL expired = one list call per "
        "account + every post's insights.",
        "Counts come from the Threads simulator (`world.stats.by_kind`). Refresh calls are "
        "token refreshes: the first run refreshes every token whose expiry the sheet does not "
        "show yet; they are outside the list/insights minimum.",
    ]
    return table


def economy_verdict(runs: list[EconomyRun]) -> Verdict:
    """Every run's list + insights calls equal the minimum."""
    missed = [run for run in runs if not run.at_minimum]
    return Verdict(
        "Threads calls per run",
        "list + insights = minimum on every run",
        "; ".join(f"{run.name}: {run.used}/{run.minimum}" for run in runs),
        not missed,
        ", ".join(f"{run.name} {run.used - run.minimum:+d}" for run in missed) or "0 extra calls",
    )


def economy_section() -> Section:
    """API economy: Threads calls per run against the minimum."""
    runs = economy_runs()
    return Section([economy_table(runs)], [economy_verdict(runs)])
