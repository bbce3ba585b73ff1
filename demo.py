"""`python threads_metrics.py demo`: the real sync, twice, against the built-in Threads simulator.

Nothing leaves the machine: the simulator listens on 127.0.0.1, the result goes to a local
workbook, and the state file lives in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import openpyxl

import threads_metrics
from sink import ACCOUNTS_SHEET, DATA_SHEET, SinkError
from threads_simulator import ThreadsWorld, make_demo_world, serve
from workbook_sink import WorkbookSink, save_atomically

# Marks a workbook the demo wrote, so running the demo again may replace it (and nothing else).
DEMO_TITLE = "Threads Metrics demo"
EXIT_REFUSED = 2


@dataclass
class RunReport:
    """What one run of the sync did, measured from the simulator and the workbook."""

    exit_code: int
    list_calls: int
    insights_calls: int
    refresh_calls: int
    total_calls: int
    new_rows: int
    seconds: float


def refusal(path: Path) -> str | None:
    """Why the demo must not write to path, or None when it may."""
    if path.suffix.lower() != ".xlsx":
        return f"{path} does not end with .xlsx: pass --workbook with a .xlsx file name"
    if not path.exists():
        return None
    if path.is_dir():
        return f"{path} is a folder: pass --workbook with a file name"
    try:
        workbook = openpyxl.load_workbook(path, read_only=True)
        title = workbook.properties.title
        workbook.close()
    except Exception:  # unreadable: certainly not a workbook the demo wrote
        title = None
    if title != DEMO_TITLE:
        return f"{path} exists and was not written by the demo: not overwriting it; pass --workbook"
    return None


def write_accounts_workbook(path: Path, world: ThreadsWorld) -> None:
    """A fresh demo workbook holding only the accounts sheet with the simulated tokens."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = ACCOUNTS_SHEET
    sheet.append(["account_name", "access_token"])
    for account in world.accounts.values():
        sheet.append([account.username, account.token])
    workbook.properties.title = DEMO_TITLE
    save_atomically(workbook, path)


def stored_posts(path: Path) -> int:
    """How many rows of the data sheet hold a post."""
    frame = WorkbookSink(str(path)).read_posts()
    return 0 if frame.empty else int(frame["post_id"].notna().sum())


def run_once(env: dict[str, str], world: ThreadsWorld, path: Path) -> RunReport:
    """One `run` of the real pipeline, with the Threads calls it made and the rows it added."""
    before = stored_posts(path)
    world.reset_stats()
    started = time.monotonic()
    args = argparse.Namespace(command="run", dry_run=False, accounts=None)
    exit_code = threads_metrics.run_command(args, env)
    seconds = time.monotonic() - started
    stats = world.stats  # the client is done: every request has been answered
    return RunReport(
        exit_code,
        stats.by_kind["list"],
        stats.by_kind["insights"],
        stats.by_kind["refresh"],
        stats.total,
        stored_posts(path) - before,
        seconds,
    )


def describe(number: int, report: RunReport, accounts: int) -> str:
    """One line of the summary for one run."""
    posts = f"{report.new_rows} posts written" if number == 1 else f"{report.new_rows} new posts"
    fresh = " (all fresh)" if number > 1 and report.insights_calls == 0 else ""
    calls = f"{report.list_calls} list calls + {report.insights_calls} insights calls{fresh}"
    if report.refresh_calls:
        calls += f" + {report.refresh_calls} token refreshes"
    other = report.total_calls - report.list_calls - report.insights_calls - report.refresh_calls
    if other:
        calls += f" + {other} other calls"
    return (
        f"run {number}: {accounts} accounts, {posts}, {calls} = {report.total_calls} Threads "
        f"calls, {report.seconds:.1f} s"
    )


def run_demo(workbook_path: str) -> int:
    """Start the simulator, write the accounts workbook, sync twice, print what happened."""
    path = Path(workbook_path).expanduser().resolve()
    reason = refusal(path)
    if reason:
        print(f"threads_metrics demo: {reason}", file=sys.stderr)
        return EXIT_REFUSED
    world = make_demo_world()
    with serve(world) as server, tempfile.TemporaryDirectory(prefix="threads-demo-") as state:
        try:
            write_accounts_workbook(path, world)
        except SinkError as error:
            print(f"threads_metrics demo: {error}", file=sys.stderr)
            return threads_metrics.EXIT_FAILED
        env = {
            "THREADS_WORKBOOK": str(path),
            "THREADS_API_BASE_URL": server.base_url,
            # The demo's own state: the user's real .threads_state.json is never touched.
            "THREADS_STATE_FILE": str(Path(state) / "state.json"),
            "LOG_LEVEL": "warning",  # JSON log lines only if something goes wrong
        }
        print(
            f"Threads Metrics demo (simulated Threads API on {server.base_url}, "
            "nothing leaves this machine)",
            flush=True,
        )
        for number in (1, 2):
            report = run_once(env, world, path)
            print(describe(number, report, len(world.accounts)), flush=True)
            if report.exit_code != threads_metrics.EXIT_OK:
                print(f"run {number} failed (exit code {report.exit_code}): see the log above")
                return report.exit_code
    print(f"workbook: {path} (sheet {DATA_SHEET})")
    return threads_metrics.EXIT_OK
