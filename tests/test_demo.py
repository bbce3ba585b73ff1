"""`python threads_metrics.py demo` runs the real sync offline, twice, into a local workbook."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

import demo
from sink import DATA_SHEET
from threads_simulator import make_demo_world

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")


def run_demo_command(workbook: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The demo as a newcomer runs it: no Google or Threads variables at all."""
    env = {name: os.environ[name] for name in ("PATH", "SYSTEMROOT") if name in os.environ}
    return subprocess.run(
        [sys.executable, str(ROOT / "threads_metrics.py"), "demo", "--workbook", str(workbook)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def finished_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """Run the demo once in an empty folder: (workbook, stdout, seconds)."""
    folder = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    result = run_demo_command(folder / "demo.xlsx", folder)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(os.listdir(folder)) == ["demo.xlsx"]  # the state file lived elsewhere
    return folder / "demo.xlsx", result.stdout, seconds


def test_demo_finishes_well_under_30_seconds(finished_demo: tuple[Path, str, float]) -> None:
    assert finished_demo[2] < 30


def test_workbook_holds_every_simulated_post_once_with_exact_ids_texts_and_metrics(
    finished_demo: tuple[Path, str, float],
) -> None:
    sheet = openpyxl.load_workbook(finished_demo[0])[DATA_SHEET]
    header = [cell.value for cell in sheet[1]]
    rows = [dict(zip(header, row, strict=False)) for row in sheet.iter_rows(min_row=2)]
    stored = {(row["account_name"].value, row["post_id"].value): row for row in rows}
    assert len(stored) == len(rows)  # no post twice

    world = make_demo_world()
    expected = {
        (account.username, post.id): post
        for account in world.accounts.values()
        for post in world.posts_of(account.username)
    }
    assert set(stored) == set(expected)
    for key, post in expected.items():
        row = stored[key]
        assert row["post_id"].data_type == "s"  # 17-18 digit ids kept as text
        assert row["text"].value == post.text
        assert row["text"].data_type in ("s", "n")  # "n" is openpyxl's empty cell; never "f"
        assert row["timestamp"].value == post.timestamp_text
        for name in METRICS:
            assert row[name].value == post.metrics.get(name), (key, name)


def test_second_run_lists_once_per_account_and_asks_no_insights(
    finished_demo: tuple[Path, str, float],
) -> None:
    output = finished_demo[1]
    world = make_demo_world()
    accounts = len(world.accounts)
    posts = sum(len(world.posts_of(name)) for name in world.accounts)
    first = f"run 1: {accounts} accounts, {posts} posts written, {accounts} list calls + "
    assert first in output, output
    assert re.search(
        rf"^run 2: {accounts} accounts, 0 new posts, {accounts} list calls \+ 0 insights calls",
        output,
        re.M,
    ), output
    assert f"workbook: {finished_demo[0]}" in output


def test_demo_refuses_to_overwrite_a_file_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "report.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active["A1"] = "an analyst's numbers"
    workbook.save(path)
    before = path.read_bytes()

    assert demo.run_demo(str(path)) == 2
    message = capsys.readouterr().err
    assert "not overwriting it" in message and message.count("\n") == 1
    assert path.read_bytes() == before


def test_demo_replaces_its_own_workbook_on_the_next_try(
    finished_demo: tuple[Path, str, float],
) -> None:
    result = run_demo_command(finished_demo[0], finished_demo[0].parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^run 1: 3 accounts, \d+ posts written", result.stdout, re.M)
    assert "run 2: 3 accounts, 0 new posts" in result.stdout
