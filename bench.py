"""Benchmarks of Threads Metrics against its limits (issue 7): `python bench.py [--quick|--full]`.

Runs the sections, prints a plain table per measurement and writes the Markdown report (default
docs/benchmarks.md). Everything runs on 127.0.0.1: nothing talks to Meta or Google. Each
section lives in its own module; wall-clock numbers are never asserted in tests, the counts are
(tests/test_bench_counts.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_capacity import capacity_section
from bench_collection import collection_section
from bench_economy import economy_section
from bench_report import (
    FULL_MINUTES,
    QUICK_MINUTES,
    Section,
    plain_table,
    render_markdown,
    verdict_table,
)
from bench_requests import requests_section
from bench_sheet_phase import sheet_phase_section

ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"


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

SECTIONS: dict[str, Callable[[Mode], Section]] = {
    "collection": lambda mode: collection_section(mode.accounts, mode.posts, mode.serial_accounts),
    "economy": lambda _mode: economy_section(),
    "sheet": lambda mode: sheet_phase_section(mode.sheet_rows),
    "requests": lambda mode: requests_section(mode.sheet_rows),
}

EPILOG = f"""\
modes (sizes; the budgets are those of issue 7):
  --quick  collection: {QUICK.accounts} accounts x {QUICK.posts} posts; sheets: \
{"/".join(f"{rows:,}" for rows in QUICK.sheet_rows)} rows;
           about {QUICK_MINUTES} min on 2 cores (the default)
  --full   collection: {FULL.accounts} accounts x {FULL.posts} posts; sheets: \
{"/".join(f"{rows:,}" for rows in FULL.sheet_rows)} rows;
           about {FULL_MINUTES} min on 2 cores

sections (--only NAME, repeatable):
  collection  Collector over HTTP at THREADS_CONCURRENCY 1/4/8/16, 100 ms latency:
              wall time vs ceil(calls / C) x latency (budget: <= 1.2 x ideal at C = 8)
  economy     threads_metrics.py: first, steady, incremental, TTL-expired runs;
              Threads calls vs the minimum (budget: equal)
  sheet       read -> merge -> write of the product on N x 25 sheets, no network: time,
              peak memory, write requests (budget: 50,000 rows <= 10 s, <= 800 MB)
  requests    threads_metrics.py against the Sheets simulator holding N rows: requests
              and bytes per run (budget: constant apart from ~2 MB chunks)
  A capacity table (accounts x posts per 10-minute run) is derived when collection runs.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark Threads Metrics against its budgets (simulators on 127.0.0.1); "
        "prints the tables and writes the Markdown report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--quick", dest="mode", action="store_const", const=QUICK, help="small sizes (default)"
    )
    sizes.add_argument(
        "--full", dest="mode", action="store_const", const=FULL, help="the sizes issue 7 states"
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
        choices=tuple(SECTIONS),
        action="append",
        help="run only this section (repeatable); the report then holds only those",
    )
    return parser


def run_sections(mode: Mode, names: list[str]) -> list[Section]:
    """Run each chosen section, printing its tables as it ends; the derived one last."""
    sections: list[Section] = []
    for name in names:
        print(f"[bench] {name} ({mode.name}) ...", file=sys.stderr, flush=True)
        sections.append(SECTIONS[name](mode))
        for table in sections[-1].tables:
            print(plain_table(table) + "\n", flush=True)
    facts = {key: value for section in sections for key, value in section.facts.items()}
    if "ratios" in facts:
        sections.append(capacity_section(facts))
        print(plain_table(sections[-1].tables[0]) + "\n")
    return sections


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, print their tables and write the report."""
    args = build_parser().parse_args(argv)
    started, clock = datetime.now(UTC), time.perf_counter()
    sections = run_sections(args.mode, args.only or list(SECTIONS))
    print(plain_table(verdict_table([v for section in sections for v in section.verdicts])))
    command = " ".join(["python bench.py", *(sys.argv[1:] if argv is None else argv)])
    duration_s = time.perf_counter() - clock
    report = render_markdown(args.mode.name, sections, started, duration_s, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
