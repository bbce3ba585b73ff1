"""What the benchmarks report: result tables, budget verdicts, the machine, and the Markdown file.

The sections (bench_collection, bench_economy, bench_sheet_phase, bench_requests, bench_capacity)
each return a `Section`; `bench.py` prints them with `plain_table` and writes `render_markdown`.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

KB, MB = 1_000, 1_000_000
# The libraries whose versions decide the sheet phase's numbers.
REPORTED_PACKAGES = ("pandas", "numpy", "gspread", "gspread-dataframe", "requests", "urllib3")
REGENERATE = (
    "Regenerate with `python bench.py --full` (about {full} min on 2 cores) or `python bench.py` "
    "(`--quick`, about {quick} min; `--help` lists the sections); either rewrites this file. "
    "Wall-clock numbers vary from run to run by a few percent; the counts do not."
)
FULL_MINUTES, QUICK_MINUTES = 6, 1  # measured on 2 cores; update with the code


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
    why: str = ""  # for a MISS: the cause and the proposed fix, in the closing note

    @property
    def label(self) -> str:
        """PASS, MISS or n/a."""
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class Section:
    """A measurement's tables and budget verdicts.

    `facts` carries numbers the derived capacity table needs: "ratios" (collection: wall/ideal
    by concurrency), "phase" and "write" (sheet phase: seconds and the full rewrite's traffic).
    """

    tables: list[Table]
    verdicts: list[Verdict]
    facts: dict[str, Any] = field(default_factory=dict)


def fmt(value: float, digits: int = 2) -> str:
    """A number with thousands separators and a fixed count of decimals."""
    return f"{value:,.{digits}f}"


def share_left(limit: float, measured: float) -> str:
    """How much of a budget is left (negative: how far over it), as a percentage of it."""
    return f"{(limit - measured) / limit:+.0%}"


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
    """The table in GitHub Markdown: the first column left-aligned, numbers to the right."""
    lines = ["| " + " | ".join(table.headers) + " |"]
    aligns = [" --- "] + [" ---: "] * (len(table.headers) - 1)
    lines.append("|" + "|".join(aligns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def verdict_table(verdicts: list[Verdict]) -> Table:
    """Every budget with PASS/MISS and the margin."""
    table = Table("Budgets", ["budget", "limit", "measured", "result", "margin"])
    for verdict in verdicts:
        table.rows.append(
            [verdict.name, verdict.budget, verdict.measured, verdict.label, verdict.margin]
        )
    return table


def cpu_name() -> str:
    """The processor's model name (Linux), else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_lines() -> list[str]:
    """What machine and software the numbers were measured on."""
    packages = ", ".join(f"{name} {version(name)}" for name in REPORTED_PACKAGES)
    return [
        f"- Platform: {platform.platform()}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores",
        f"- Python: {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {packages}",
    ]


def closing_lines(verdicts: list[Verdict]) -> list[str]:
    """Each missed budget with its cause, or one line saying every budget is met."""
    misses = [verdict for verdict in verdicts if verdict.passed is False]
    if not misses:
        return ["Every budget measured in this mode is met."]
    return [
        f"- **{verdict.name}** missed: {verdict.measured} against {verdict.budget} "
        f"({verdict.margin}). {verdict.why}"
        for verdict in misses
    ]


def render_markdown(
    mode: str, sections: list[Section], started: datetime, duration_s: float, command: str
) -> str:
    """The Markdown report: how it was run, the machine, each budget, each table."""
    verdicts = [verdict for section in sections for verdict in section.verdicts]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({mode} mode, "
        f"{duration_s / 60:.1f} min). " + REGENERATE.format(full=FULL_MINUTES, quick=QUICK_MINUTES),
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
    lines += ["## Closing note", "", *closing_lines(verdicts)]
    return "\n".join(lines) + "\n"
