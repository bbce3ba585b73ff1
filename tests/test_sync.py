"""One sync run, in process, against both simulators over real HTTP on 127.0.0.1: incremental
fetching, the TTL, deleted posts and reposts, failures per account, dry runs, logs and secrets."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from e2e_support import log_lines

import threads_simulator as sim
from local_stack import local_stack
from threads_metrics import build_parser, run_command


@pytest.fixture
def world():
    """Two accounts with a few posts each, one of them a repost."""
    world = sim.ThreadsWorld()
    for name in ("alice", "bob"):
        world.add_account(name, token=f"THAA-secret-token-of-{name}")
        for number in range(4):
            world.add_post(
                name,
                text=f"{name} post {number}",
                timestamp=world.clock() - timedelta(hours=10 - number),
                metrics={"views": 100 + number, "likes": number},
            )
    world.add_post("bob", media_type="REPOST_FACADE", timestamp=world.clock() - timedelta(hours=1))
    return world


@pytest.fixture
def stack(world, tmp_path):
    with local_stack(world, tmp_path) as running:
        yield running


def sync(stack, capsys, *argv: str, **env: str) -> tuple[int, list[dict]]:
    """Run `threads_metrics.py run ARGV` in process; returns the exit code and the log lines."""
    args = build_parser().parse_args(["run", *argv])
    code = run_command(args, stack.env(**env))
    out = capsys.readouterr().out
    return code, log_lines(out)


def finished(lines: list[dict]) -> dict:
    """The context of the last line, `run finished`."""
    assert lines[-1]["msg"] == "run finished"
    return lines[-1]["context"]


def rows_by_key(stack) -> dict[tuple[str, str], dict]:
    """The data tab as {(account, post id): row as a dict}; fails on a repeated key."""
    values = stack.data()
    header, rows = values[0], values[1:]
    table: dict[tuple[str, str], dict] = {}
    for row in rows:
        record = dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
        key = (record["account_name"], record["post_id"])
        assert key not in table, f"duplicate row {key}"
        table[key] = record
    return table


def test_first_run_writes_every_post_once_with_metrics(stack, world, capsys):
    code, lines = sync(stack, capsys)
    assert code == 0
    table = rows_by_key(stack)
    expected = {(name, post.id) for name in world.accounts for post in world.posts_of(name)}
    assert set(table) == expected
    for name in world.accounts:
        for post in world.posts_of(name):
            row = table[(name, post.id)]
            if post.media_type == "REPOST_FACADE":
                assert row["views"] == "" and row["updated_at"] == ""
            else:
                assert row["text"] == post.text
                assert row["views"] == post.metrics["views"]
    summary = finished(lines)
    assert summary["posts_new"] == 9 and summary["accounts_failed"] == 0


def test_second_run_within_ttl_makes_no_insights_call_and_one_list_call_per_account(
    stack, world, capsys
):
    sync(stack, capsys)
    world.reset_stats()
    code, lines = sync(stack, capsys)
    assert code == 0
    assert world.stats.by_kind == {"list": 2}
    assert finished(lines)["insights_skipped_fresh"] == 8


def test_reposts_get_no_insights_call(stack, world, capsys):
    sync(stack, capsys, THREADS_METRICS_TTL_MIN="0")
    insight_paths = [path for kind, _, path in world.stats.log if kind == "insights"]
    repost = next(p for p in world.posts_of("bob") if p.media_type == "REPOST_FACADE")
    assert len(insight_paths) == 8
    assert all(repost.id not in path for path in insight_paths)


def test_ttl_zero_refreshes_every_post_and_metric_changes_reach_the_sheet(stack, world, capsys):
    sync(stack, capsys)
    post = world.posts_of("alice")[0]
    world.set_metrics(post.id, likes=999)
    world.reset_stats()
    code, _ = sync(stack, capsys, THREADS_METRICS_TTL_MIN="0")
    assert code == 0
    assert world.stats.by_kind["insights"] == 8
    assert rows_by_key(stack)[("alice", post.id)]["likes"] == 999


def test_new_posts_between_runs_are_fetched_with_one_list_call(stack, world, capsys):
    sync(stack, capsys)
    new = world.add_post("alice", text="brand new")
    world.reset_stats()
    code, lines = sync(stack, capsys)
    assert code == 0
    assert world.stats.by_kind == {"list": 2, "insights": 1}
    assert rows_by_key(stack)[("alice", new.id)]["text"] == "brand new"
    assert finished(lines)["posts_new"] == 1


def test_lost_state_uses_the_sheet_updated_at_so_no_insights_storm(stack, world, capsys):
    sync(stack, capsys)
    stack.state_file.unlink()
    world.reset_stats()
    code, _ = sync(stack, capsys)
    assert code == 0
    assert world.stats.by_kind["insights"] == 0
    assert len(rows_by_key(stack)) == 9


def test_deleted_post_keeps_its_row_and_is_asked_only_once(stack, world, capsys):
    sync(stack, capsys)
    gone = world.posts_of("alice")[1]
    world.delete_post(gone.id)
    sync(stack, capsys, THREADS_METRICS_TTL_MIN="0")
    world.reset_stats()
    code, lines = sync(stack, capsys, THREADS_METRICS_TTL_MIN="0")
    assert code == 0
    assert world.stats.by_kind["insights"] == 7
    row = rows_by_key(stack)[("alice", gone.id)]
    assert row["text"] == gone.text and row["views"] == gone.metrics["views"]


def test_expired_token_fails_only_that_account(stack, world, capsys):
    world.expire_token("bob")
    code, lines = sync(stack, capsys)
    assert code == 1
    errors = [line for line in lines if line["level"] == "error"]
    assert [line["context"]["account"] for line in errors] == ["bob"]
    assert "code 190" in errors[0]["msg"]
    assert {account for account, _ in rows_by_key(stack)} == {"alice"}
    assert world.stats.by_account["bob"] == 2  # one refresh try and one list call: no retry


def test_a_failed_sheet_write_keeps_the_state_marks_where_they_were(stack, world, capsys):
    stack.sheets.script("PUT", r"/values/", [403])  # not retried: fails at once
    code, lines = sync(stack, capsys)
    assert code == 1
    assert "cannot write sheet" in [line for line in lines if line["level"] == "error"][0]["msg"]
    assert not stack.state_file.exists()
    world.reset_stats()
    assert sync(stack, capsys)[0] == 0
    assert world.stats.by_kind["insights"] == 8
    assert len(rows_by_key(stack)) == 9


def test_dry_run_writes_neither_the_sheet_nor_the_state(stack, world, capsys):
    args = build_parser().parse_args(["run", "--dry-run"])
    code = run_command(args, stack.env())
    out = capsys.readouterr().out
    assert code == 0
    assert "dry run: 9 new rows, 0 rows updated" in out
    assert stack.data() == []
    assert not stack.state_file.exists()


def test_accounts_option_limits_the_run(stack, world, capsys):
    code, _ = sync(stack, capsys, "--accounts", "bob")
    assert code == 0
    assert {account for account, _ in rows_by_key(stack)} == {"bob"}
    assert world.stats.by_account["alice"] == 0


def test_unknown_post_field_is_dropped_with_one_warning_and_remembered(stack, world, capsys):
    code, lines = sync(stack, capsys, THREADS_POST_FIELDS="id,text,like_count")
    assert code == 0
    warnings = [line["msg"] for line in lines if line["level"] == "warning"]
    assert sum("like_count" in message for message in warnings) == 1
    assert len(rows_by_key(stack)) == 9
    world.reset_stats()
    sync(stack, capsys, THREADS_POST_FIELDS="id,text,like_count")
    assert world.stats.by_kind["list"] == 2  # not rejected again: the field was remembered


def test_heartbeat_and_run_finished_lines_carry_the_counters(stack, world, capsys):
    world.faults.latency_s = 0.05
    code, lines = sync(stack, capsys, THREADS_HEARTBEAT_SEC="0.1", THREADS_CONCURRENCY="1")
    assert code == 0
    assert any(line["msg"] == "heartbeat" for line in lines)
    summary = finished(lines)
    for key in (
        "accounts_ok",
        "accounts_failed",
        "posts_new",
        "posts_updated",
        "insights_fetched",
        "insights_skipped_fresh",
        "threads_calls",
        "sheets_requests",
        "duration_s",
        "stopped_early",
    ):
        assert key in summary
    assert summary["threads_calls"] == world.stats.total
    assert all(set(line) == {"ts", "level", "msg", "context"} for line in lines)


def test_debug_logs_each_request_with_the_token_redacted(stack, world, capsys):
    code, lines = sync(stack, capsys, LOG_LEVEL="debug")
    requests_logged = [line for line in lines if line["context"].get("action") == "request"]
    assert len(requests_logged) == world.stats.total
    assert all("access_token=***" in line["msg"] for line in requests_logged)


def test_no_token_in_logs_state_file_or_data_sheet(stack, world, capsys):
    world.expire_token("bob")
    args = build_parser().parse_args(["run"])
    run_command(args, stack.env(LOG_LEVEL="debug"))
    captured = capsys.readouterr()
    everything = captured.out + captured.err + stack.state_file.read_text()
    everything += json.dumps(stack.data())
    for account in world.accounts.values():
        assert account.token not in everything
    assert "THAA-secret-token" not in everything


def test_deadline_stops_the_crawl_and_the_next_run_resumes_it(world, tmp_path, capsys):
    big = sim.make_world(accounts=1, posts_per_account=2000)
    big.faults.latency_s = 0.1  # 20 list pages one after another: about 2 s
    with local_stack(big, tmp_path) as stack:
        code, lines = sync(stack, capsys, THREADS_RUN_TIMEOUT_MIN="0.02", THREADS_CONCURRENCY="2")
        assert code == 0 and finished(lines)["stopped_early"] is True
        state = json.loads(stack.state_file.read_text())
        first_pass = len(rows_by_key(stack))
        big.faults.latency_s = 0
        big.reset_stats()
        code, lines = sync(stack, capsys)
        assert code == 0 and finished(lines)["stopped_early"] is False
        account = next(iter(state["accounts"].values()))
        assert account["crawl_done"] is False and account["crawl_after"]
        assert 0 < first_pass < 2000
        assert len(rows_by_key(stack)) == 2000
        # Resumed at the cursor: the second run listed the rest (and the newest page once
        # more, for posts published since), not all 20 pages again.
        assert big.stats.by_kind["list"] <= 20 - first_pass // 100 + 2


class _Collector(BaseHTTPRequestHandler):
    """Records POSTed bodies (the URL_GAS_RAZVERTIVANIA report)."""

    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_report_url_receives_the_summary_after_the_write(stack, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/exec"
        code, _ = sync(stack, capsys, URL_GAS_RAZVERTIVANIA=url)
    finally:
        server.shutdown()
    assert code == 0
    assert _Collector.bodies[-1]["posts_new"] == 9


def test_report_failure_is_only_a_warning(stack, capsys):
    code, lines = sync(stack, capsys, URL_GAS_RAZVERTIVANIA="http://127.0.0.1:9/unreachable")
    assert code == 0
    warnings = [line["msg"] for line in lines if line["level"] == "warning"]
    assert any("URL_GAS_RAZVERTIVANIA" in message for message in warnings)
