"""Sheet phase (benchmark section 3): time, peak memory and write traffic of the product's
read -> merge -> write on synthetic N x 25 sheets, with no network and no server time.

Each measurement runs in a fresh `bench_sheet_worker.py` process; this module prepares the data,
starts the workers and turns their results into tables and budget verdicts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_sheet_worker
from bench_report import MB, Section, Table, Verdict, fmt, share_left
from bench_sheet_data import (
    ANALYST_COLUMNS,
    NEW_SHARE,
    OWNED,
    SHEET_COLUMNS,
    sheets_world,
    synthetic_sheet,
    values_get_body,
)
from sink import WRITE_CHUNK_BYTES

BUDGET_ROWS = 50_000
BUDGET_S = 10.0
BUDGET_MB = 800.0
WORKER = Path(bench_sheet_worker.__file__)
READS = ("metadata", "values_get")  # request kinds that are not writes


@dataclass(frozen=True)
class Scenario:
    """What a run fetched for the sheet, and whether it is the one the budget holds."""

    name: str
    ttl_expired: bool  # every post's insights fetched again, as once an hour by default
    budget: bool


SCENARIOS = (
    Scenario("TTL expired", ttl_expired=True, budget=True),
    Scenario("new posts", ttl_expired=False, budget=False),
)


def run_worker(folder: Path, rows: int, *flags: str) -> dict[str, Any]:
    """One measurement in a fresh process; its JSON result."""
    command = [sys.executable, str(WORKER), str(folder), str(rows), *flags]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"sheet phase worker failed: {process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def measure_size(rows: int, folder: Path) -> dict[str, dict[str, Any]]:
    """Both scenarios at one sheet size: {scenario name: worker result}."""
    sheet = synthetic_sheet(rows)
    (folder / "values.json").write_bytes(values_get_body(sheets_world(sheet.grid)))
    results: dict[str, dict[str, Any]] = {}
    for scenario in SCENARIOS:
        (folder / "fresh.json").write_text(json.dumps(sheet.fresh(scenario.ttl_expired)))
        if scenario.budget:  # the timed worker also times the direct builds; a second traces
            result = run_worker(folder, rows, "--compare")
            result.update(run_worker(folder, rows, "--trace"))
        else:
            result = run_worker(folder, rows)
        results[scenario.name] = result
    return results


def total_s(result: dict[str, Any]) -> float:
    """Seconds of the whole phase."""
    return result["read_s"] + result["merge_s"] + result["write_s"]


def writes(result: dict[str, Any]) -> int:
    """Write requests the phase sent."""
    return sum(count for kind, count in result["requests"].items() if kind not in READS)


def chunks(result: dict[str, Any]) -> int:
    """The data sheet's chunked writes (one values.update each)."""
    return result["requests"].get("values_update", 0)


def timing_table() -> Table:
    """Table 3 with its notes; rows are added per measurement."""
    table = Table(
        "3. Sheet phase: read -> merge -> write (network excluded)",
        ["rows", "run", "values.get MB", "read s", "merge s", "write s", "total s"]
        + ["rows written", "writes (chunks)", "MB sent", "peak RSS MB", "RSS at start MB"]
        + ["traced peak MB"],
    )
    table.notes = [
        f"Sheet: N rows x {SHEET_COLUMNS} columns as values.get (UNFORMATTED_VALUE) returns them "
        "from the Sheets simulator: the posts of `make_world(50, N / 50, seed=2)` in the "
        f"{len(OWNED)} owned columns (18-digit ids as text, texts of 5-3,000 characters, mostly "
        f"Cyrillic, metrics, updated_at) and {len(ANALYST_COLUMNS)} analyst columns to their "
        "right (notes, categories, numbers, formula results, booleans). `values.get MB` is the "
        "simulator's body (non-ASCII as \\u escapes).",
        "Runs: `TTL expired` = every post's insights fetched again (as once an hour with the "
        "default THREADS_METRICS_TTL_MIN=60; updated_at changes on every row, so every row is "
        f"written) + {NEW_SHARE:.0%} new posts; `new posts` = only the {NEW_SHARE:.0%} new posts, "
        "so only the new rows are written.",
        "Timed: `GoogleSheetsSink.read_posts()`, `merge_posts()` and the product's write step "
        "`threads_metrics.write_and_format()` (`write_posts` of the merge's `write_ranges`: "
        "`row_chunks`, `set_with_dataframe` per ~2 MB chunk, gspread, requests' JSON encoding, "
        "the formatting batchUpdate). The product's own client and session are used; only the "
        "transport under requests is replaced (`bench_sheet_worker.PhaseAdapter`): values.get "
        "answers the prepared body and writes are counted and dropped, so no network and no "
        "server time is in the numbers.",
        "`writes (chunks)`: write requests of the phase, of them values.update chunks; `MB "
        "sent`: request bodies. Each measurement runs in a fresh process; `peak RSS` is its "
        "high-water mark during the phase (Linux VmHWM, reset when the phase starts), so "
        "interpreter, libraries and the received values.get body count (`RSS at start`). "
        "`traced peak`: the same phase in another process under `tracemalloc` (Python and numpy "
        "allocations during the phase; slower, so not timed).",
    ]
    return table


def timing_row(rows: int, name: str, result: dict[str, Any]) -> list[str]:
    """One measurement's row of table 3."""
    traced = result.get("traced_peak_mb")
    return [
        f"{rows:,}",
        name,
        fmt(result["values_get_bytes"] / MB, 1),
        fmt(result["read_s"]),
        fmt(result["merge_s"]),
        fmt(result["write_s"]),
        fmt(total_s(result)),
        f"{result['rows_written']:,}",
        f"{writes(result)} ({chunks(result)})",
        fmt(result["bytes_sent"] / MB),
        fmt(result["rss_peak_mb"], 0),
        fmt(result["rss_before_mb"], 0),
        fmt(traced, 0) if traced is not None else "-",
    ]


def gap_table() -> Table:
    """Table 3b with its notes: the product against the issue's direct builds."""
    table = Table(
        "3b. Sheet phase: the product against the direct builds (TTL expired, same data)",
        ["rows", "read: product s", "read: get_as_dataframe s", "read: values.get -> DataFrame s"]
        + ["write: product s", "write: from df.values s", "write gap s", "same payload"],
    )
    table.notes = [
        "`get_as_dataframe`: gspread-dataframe's reader on the same values.get body; "
        "`values.get -> DataFrame`: `json.loads` + `pd.DataFrame(values)`. `from df.values`: "
        "the cells `set_with_dataframe` sends ('-prefixed text, numbers as numbers, blanks as "
        "empty), built with one list comprehension over `df.values` and JSON-encoded; `same "
        "payload` checks it cell by cell against what the product sent.",
    ]
    return table


def gap_row(rows: int, result: dict[str, Any]) -> list[str]:
    """One size's row of table 3b."""
    return [
        f"{rows:,}",
        fmt(result["read_s"]),
        fmt(result["gdf_read_s"]),
        fmt(result["direct_read_s"]),
        fmt(result["write_s"]),
        fmt(result["direct_write_s"]),
        fmt(result["write_s"] - result["direct_write_s"]),
        "yes" if result["direct_same_payload"] else "NO",
    ]


def phase_verdict(budget_runs: dict[int, dict[str, Any]]) -> Verdict:
    """The 50k-row budget on the TTL-expired run, or n/a when that size was not run."""
    budget = f"{BUDGET_ROWS:,} rows: <= {BUDGET_S:.0f} s, <= {BUDGET_MB:.0f} MB"
    result = budget_runs.get(BUDGET_ROWS)
    if result is None:
        return Verdict("sheet phase", budget, "not run (use --full)", None, "")
    seconds, peak = total_s(result), result["rss_peak_mb"]
    return Verdict(
        "sheet phase",
        budget,
        f"{fmt(seconds)} s, {fmt(peak, 0)} MB peak RSS (TTL expired: whole sheet written)",
        seconds <= BUDGET_S and peak <= BUDGET_MB,
        f"time {share_left(BUDGET_S, seconds)}, memory {share_left(BUDGET_MB, peak)} of the "
        "budget left",
        f"write {fmt(result['write_s'])} s, of which building the payload from df.values "
        f"would take {fmt(result['direct_write_s'])} s",
    )


def chunk_verdict(budget_runs: dict[int, dict[str, Any]]) -> Verdict:
    """A whole-sheet write costs one request per ~2 MB chunk plus a number that never grows."""
    others = {rows: writes(result) - chunks(result) for rows, result in budget_runs.items()}
    largest = budget_runs[max(budget_runs)]
    constant = len(set(others.values())) == 1
    sizes = "/".join(f"{rows:,}" for rows in budget_runs)
    return Verdict(
        "Sheets requests per run (whole-sheet write)",
        "one request per ~2 MB chunk + a constant",
        f"writes besides the chunks at {sizes} rows: "
        + "/".join(str(count) for count in others.values())
        + f"; {chunks(largest)} chunks, largest body {fmt(largest['largest_body'] / MB)} MB "
        f"at {max(budget_runs):,} rows",
        constant and largest["largest_body"] <= WRITE_CHUNK_BYTES * 1.05,
        "constant across sizes" if constant else "grows with the sheet",
    )


def write_facts(budget_runs: dict[int, dict[str, Any]]) -> dict[str, float]:
    """What a whole-sheet write costs per row and per chunk, for the capacity table."""
    small, large = budget_runs[min(budget_runs)], budget_runs[max(budget_runs)]
    per_chunk = (writes(large) - writes(small)) / max(1, chunks(large) - chunks(small))
    return {
        "bytes_per_row": large["bytes_sent"] / large["rows_written"],
        "writes_per_chunk": per_chunk,
        "writes_besides_chunks": writes(large) - per_chunk * chunks(large),
    }


def sheet_phase_section(sizes: tuple[int, ...]) -> Section:
    """Sheet phase at each size: tables 3 and 3b, the budget and the write-request verdict."""
    timing, gap = timing_table(), gap_table()
    budget_runs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for rows in sizes:
            for name, result in measure_size(rows, Path(folder)).items():
                timing.rows.append(timing_row(rows, name, result))
                if "gdf_read_s" in result:
                    gap.rows.append(gap_row(rows, result))
                    budget_runs[rows] = result
    largest = max(budget_runs)
    facts = {
        "phase": (largest, total_s(budget_runs[largest])),
        "write": write_facts(budget_runs),
    }
    verdicts = [phase_verdict(budget_runs), chunk_verdict(budget_runs)]
    return Section([timing, gap], verdicts, facts)
