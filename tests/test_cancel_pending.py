"""Tests for cancel_pending: which runs are cancelled, paging, ETag/304, 409, rate limits, backoff,
configuration errors and logs, against `responses` fakes with a fake clock (no real waiting)."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
import requests
import responses
from responses.registries import OrderedRegistry

import cancel_pending as cp
from logs import setup_logging

API = "https://api.github.com"
REPO = f"{API}/repos/octo/metrics"
LIST_URL = f"{REPO}/actions/workflows/threads-metrics.yml/runs"
FIRST_PAGE = f"{LIST_URL}?per_page=100"
TOKEN = "ghs_FakeTokenForTests0123456789abcdef"
OTHER_TOKEN = "ghs_OnlyTheLogTestUsesThisToken42"
ENV = {"GITHUB_OWNER": "octo", "GITHUB_REPO": "metrics", "GITHUB_TOKEN": TOKEN}
START = 1_700_000_000.0
SECONDARY_LIMIT = "You have exceeded a secondary rate limit. Please wait a few minutes."


def runs_body(*runs: tuple[int, str]) -> dict[str, Any]:
    """A page of the list endpoint in GitHub's shape."""
    return {
        "total_count": len(runs),
        "workflow_runs": [
            {"id": run_id, "status": status, "conclusion": None, "run_number": run_id}
            for run_id, status in runs
        ],
    }


def cancel_url(run_id: int) -> str:
    """URL of the cancel endpoint of a run."""
    return f"{REPO}/actions/runs/{run_id}/cancel"


def posted_ids(api: responses.RequestsMock) -> list[int]:
    """Ids of the runs whose cancel endpoint was called, in order."""
    return [
        int(call.request.url.split("/")[-2]) for call in api.calls if call.request.method == "POST"
    ]


class FakeClock:
    """Wall clock that moves only when the fake stop event waits."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class FakeStop:
    """Stands for the stop event: wait() advances the clock instead of sleeping."""

    def __init__(self, clock: FakeClock, stop_when: Callable[[], bool]) -> None:
        self.clock = clock
        self.stop_when = stop_when
        self.waits: list[float] = []
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.clock.now += seconds
        if self.stop_when():
            self._set = True
        return self._set


class Harness:
    """A client on a fake clock, recording the time at which each answer came."""

    def __init__(self, api: responses.RequestsMock, env: dict[str, str] | None = None) -> None:
        self.api = api
        self.clock = FakeClock()
        self.expected_calls = 0
        self.stop = FakeStop(self.clock, lambda: len(api.calls) >= self.expected_calls)
        settings = cp.load_settings(env or ENV)
        session = cp.make_session(settings.token)
        self.sent_at: list[float] = []
        session.hooks["response"].append(lambda *_args, **_kw: self.sent_at.append(self.clock.now))
        # The fake stop event stands in for threading.Event: the gate only waits on it.
        gate = cp.RateLimitGate(self.stop, clock=self.clock, jitter=lambda: 0.0)
        self.client = cp.GitHubClient(session, settings, gate)
        self.state = cp.CancelState()

    def tick(self, dry_run: bool = False) -> cp.TickResult:
        return cp.tick(self.client, self.state, dry_run=dry_run)

    def loop_until(self, calls: int, interval: float = 10.0) -> None:
        """Run the loop until `calls` requests were made and the next wait begins."""
        self.expected_calls = calls
        assert cp.run_loop(self.client, self.state, interval=interval, dry_run=False) == 0

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in pairwise(self.sent_at)]


@pytest.fixture()
def api() -> Iterator[responses.RequestsMock]:
    """Answers served strictly in the order they are added; all must be used."""
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        yield mock


@pytest.fixture()
def gh(api: responses.RequestsMock) -> Harness:
    return Harness(api)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """run_from_args replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def args(*argv: str) -> argparse.Namespace:
    return cp.build_parser().parse_args(list(argv))


# Which runs are cancelled


def test_cancels_queued_and_pending_when_a_run_is_in_progress(gh: Harness) -> None:
    listed = [(7, "waiting"), (6, "requested"), (5, "pending"), (4, "queued"), (3, "in_progress")]
    gh.api.get(FIRST_PAGE, json=runs_body(*listed, (2, "completed")))
    for run_id in (7, 6, 5, 4):
        gh.api.post(cancel_url(run_id), status=202, json={})

    result = gh.tick()

    assert result.ok
    assert result.cancelled == [7, 6, 5, 4]
    assert posted_ids(gh.api) == [7, 6, 5, 4]


def test_never_cancels_in_progress_run(gh: Harness) -> None:
    gh.api.get(FIRST_PAGE, json=runs_body((9, "queued"), (8, "in_progress"), (7, "in_progress")))
    gh.api.post(cancel_url(9), status=202)

    gh.tick()

    assert posted_ids(gh.api) == [9]


def test_cancels_nothing_without_a_run_in_progress(gh: Harness) -> None:
    gh.api.get(FIRST_PAGE, json=runs_body((9, "queued"), (8, "pending"), (7, "completed")))

    result = gh.tick()

    assert result.ok and result.cancelled == []
    assert len(gh.api.calls) == 1


# Paging


def test_follows_link_next_to_second_page(gh: Harness) -> None:
    second = f"{LIST_URL}?per_page=100&page=2"
    gh.api.get(
        FIRST_PAGE,
        json=runs_body((12, "queued"), (11, "in_progress")),
        headers={"Link": f'<{second}>; rel="next", <{LIST_URL}?per_page=100&page=9>; rel="last"'},
    )
    gh.api.get(second, json=runs_body((10, "pending"), (9, "completed")))
    gh.api.post(cancel_url(12), status=202)
    gh.api.post(cancel_url(10), status=202)

    result = gh.tick()

    # The next URL is used as given: per_page is not sent a second time.
    assert gh.api.calls[1].request.url == second
    assert result.cancelled == [12, 10]


def test_stops_paging_at_a_page_that_holds_finished_runs(gh: Harness) -> None:
    next_link = f'<{LIST_URL}?per_page=100&page=2>; rel="next"'
    gh.api.get(
        FIRST_PAGE,
        json=runs_body((12, "in_progress"), (11, "completed")),
        headers={"Link": next_link},
    )

    gh.tick()

    assert len(gh.api.calls) == 1


def test_does_not_follow_a_next_link_to_another_host(gh: Harness) -> None:
    gh.api.get(
        FIRST_PAGE,
        json=runs_body((12, "in_progress")),
        headers={"Link": '<https://elsewhere.example/runs?page=2>; rel="next"'},
    )

    gh.tick()

    assert len(gh.api.calls) == 1


# ETag / 304 and remembered runs


def test_sends_if_none_match_and_treats_304_as_unchanged(gh: Harness) -> None:
    gh.api.get(
        FIRST_PAGE, json=runs_body((2, "queued"), (1, "in_progress")), headers={"ETag": 'W/"a1"'}
    )
    gh.api.post(cancel_url(2), status=202)
    gh.api.get(FIRST_PAGE, status=304, headers={"ETag": 'W/"a1"'})
    # GitHub may list a cancelled run as queued for a while: that must not cause a second POST.
    listed = [(3, "queued"), (2, "queued"), (1, "in_progress")]
    gh.api.get(FIRST_PAGE, json=runs_body(*listed), headers={"ETag": 'W/"b2"'})
    gh.api.post(cancel_url(3), status=202)

    first, unchanged, changed = gh.tick(), gh.tick(), gh.tick()

    gets = [call.request for call in gh.api.calls if call.request.method == "GET"]
    assert "If-None-Match" not in gets[0].headers
    assert gets[1].headers["If-None-Match"] == 'W/"a1"'
    assert gets[2].headers["If-None-Match"] == 'W/"a1"'
    assert (first.cancelled, unchanged.cancelled, changed.cancelled) == ([2], [], [3])
    assert unchanged.ok
    assert posted_ids(gh.api) == [2, 3]


def test_409_is_logged_once_and_not_retried(gh: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    listed = runs_body((2, "queued"), (1, "in_progress"))
    gh.api.get(FIRST_PAGE, json=listed, headers={"ETag": '"x"'})
    gh.api.post(cancel_url(2), status=409, json={"message": "Cannot cancel a workflow run"})
    gh.api.get(FIRST_PAGE, status=304)
    gh.api.get(FIRST_PAGE, json=listed, headers={"ETag": '"y"'})

    results = [gh.tick() for _ in range(3)]

    assert posted_ids(gh.api) == [2]
    assert results[0].ok and results[0].refused == [2]
    refused = [r for r in caplog.records if "409" in r.getMessage()]
    assert len(refused) == 1
    assert refused[0].context == {"run_id": 2, "action": "cancel", "status": "queued"}
    # A 409 is an answer, not a failure: nothing is held back.
    assert gh.client.gate.remaining() == 0


def test_other_cancel_error_is_logged_and_the_loop_goes_on(
    gh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    listed = runs_body((3, "queued"), (2, "queued"), (1, "in_progress"))
    gh.api.get(FIRST_PAGE, json=listed)
    gh.api.post(cancel_url(3), status=500, json={"message": "Server Error"})
    gh.api.get(FIRST_PAGE, json=listed)
    gh.api.post(cancel_url(3), status=202)
    gh.api.post(cancel_url(2), status=202)

    gh.loop_until(calls=5)

    # Run 2 waits for the next pass: no request goes out while the backoff is in force.
    assert posted_ids(gh.api) == [3, 3, 2]
    assert gh.gaps()[1] == 10
    assert "could not cancel run 3: GitHub answered 500: Server Error" in caplog.text


# Rate limits and backoff


def test_retry_after_is_honoured_before_next_request(gh: Harness) -> None:
    gh.api.get(FIRST_PAGE, status=403, headers={"retry-after": "120"})
    gh.api.get(FIRST_PAGE, json=runs_body())

    gh.loop_until(calls=2)

    assert gh.sent_at == [START, START + 120]


@pytest.mark.parametrize("status", [403, 429])
def test_waits_until_ratelimit_reset_when_remaining_is_zero(gh: Harness, status: int) -> None:
    reset = int(START) + 900
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    gh.api.get(FIRST_PAGE, status=status, headers=headers, json={"message": "API rate limit"})
    gh.api.get(FIRST_PAGE, json=runs_body())

    gh.loop_until(calls=2)

    assert reset <= gh.sent_at[1] <= reset + cp.RESET_MARGIN_S


def test_secondary_limit_without_headers_waits_at_least_60s_then_backs_off(gh: Harness) -> None:
    for _ in range(3):
        gh.api.get(FIRST_PAGE, status=403, json={"message": SECONDARY_LIMIT})
    gh.api.get(FIRST_PAGE, json=runs_body())

    gh.loop_until(calls=4)

    assert gh.gaps() == [60, 120, 240]


def test_rate_limited_cancel_holds_the_remaining_cancels(gh: Harness) -> None:
    listed = runs_body((3, "queued"), (2, "queued"), (1, "in_progress"))
    gh.api.get(FIRST_PAGE, json=listed)
    gh.api.post(cancel_url(3), status=429, headers={"retry-after": "30"})
    gh.api.get(FIRST_PAGE, json=listed)
    gh.api.post(cancel_url(3), status=202)
    gh.api.post(cancel_url(2), status=202)

    gh.loop_until(calls=5)

    assert posted_ids(gh.api) == [3, 3, 2]
    assert gh.gaps()[1] == 30


def test_403_without_limit_signs_names_the_missing_permission_and_still_waits(
    gh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    gh.api.get(FIRST_PAGE, json=runs_body((2, "queued"), (1, "in_progress")))
    refusal = {"message": "Resource not accessible by integration"}
    gh.api.post(cancel_url(2), status=403, json=refusal)

    result = gh.tick()

    assert not result.ok
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert "Resource not accessible by integration" in record.getMessage()
    assert "actions: write" in record.getMessage()
    assert gh.client.gate.remaining() == cp.RATE_LIMIT_MIN_WAIT_S


def test_answer_with_no_requests_left_holds_requests_until_reset(gh: Harness) -> None:
    reset = int(START) + 600
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    listed = runs_body((2, "queued"), (1, "in_progress"))
    gh.api.get(FIRST_PAGE, json=listed, headers=headers)
    gh.api.get(FIRST_PAGE, json=listed)
    gh.api.post(cancel_url(2), status=202)

    gh.loop_until(calls=3)

    assert gh.sent_at[1] >= reset
    assert posted_ids(gh.api) == [2]


def test_5xx_backs_off_exponentially_with_cap(gh: Harness) -> None:
    for _ in range(7):
        gh.api.get(FIRST_PAGE, status=502, body="Bad Gateway")
    gh.api.get(FIRST_PAGE, json=runs_body())
    gh.api.get(FIRST_PAGE, json=runs_body())

    gh.loop_until(calls=9)

    # Doubling from 10 s, capped at 5 minutes; a success brings back the plain interval.
    assert gh.gaps() == [10, 20, 40, 80, 160, 300, 300, 10]


def test_jitter_adds_at_most_a_fifth_and_never_passes_the_cap() -> None:
    clock = FakeClock()
    gate = cp.RateLimitGate(FakeStop(clock, lambda: False), clock=clock, jitter=lambda: 1.0)

    waits = [gate.record_failure() for _ in range(6)]

    assert waits == [12, 24, 48, 96, 192, 300]


def test_connection_error_is_a_log_line_and_backs_off(
    gh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    gh.api.get(FIRST_PAGE, body=requests.ConnectionError("connection refused"))

    result = gh.tick()

    assert not result.ok
    assert gh.client.gate.remaining() == cp.BACKOFF_BASE_S
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "GitHub unreachable: connection refused" in record.getMessage()


def test_401_logs_token_refused_and_fails_the_pass(
    gh: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    gh.api.get(FIRST_PAGE, status=401, json={"message": "Bad credentials"})

    result = gh.tick()

    assert not result.ok
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert cp.TOKEN_REFUSED in record.getMessage()


# Settings, command line and logs


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"GITHUB_OWNER": "octo", "GITHUB_REPO": "metrics"}, "GITHUB_TOKEN"),
        ({"GITHUB_TOKEN": TOKEN}, "GITHUB_OWNER"),
        ({"GITHUB_OWNER": "octo", "GITHUB_TOKEN": TOKEN}, "GITHUB_REPO"),
        ({"GITHUB_REPOSITORY": "metrics", "GITHUB_TOKEN": TOKEN}, "GITHUB_REPOSITORY"),
        ({**ENV, "GITHUB_TOKEN": "ghs_two words"}, "GITHUB_TOKEN"),
        ({**ENV, "GITHUB_API_URL": "api.github.com"}, "GITHUB_API_URL"),
        ({**ENV, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_missing_token_exits_2_without_request(
    api: responses.RequestsMock,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
) -> None:
    code = cp.run_from_args(args("--once"), env)

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("cancel_pending: configuration error: ") and variable in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "two words" not in err
    assert len(api.calls) == 0


def test_github_repository_replaces_owner_and_repo(api: responses.RequestsMock) -> None:
    env = {
        "GITHUB_REPOSITORY": "octo/metrics",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
    }
    api.get(
        "https://ghe.example.com/api/v3/repos/octo/metrics/actions/workflows/sync.yml/runs",
        json=runs_body(),
    )

    assert cp.run_from_args(args("--once", "--workflow", "sync.yml"), env) == 0

    settings = cp.load_settings(env)
    assert (settings.owner, settings.repo) == ("octo", "metrics")
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 500, "json": {"message": f"token {OTHER_TOKEN} is odd"}},
        {"body": requests.ConnectionError(f"Authorization: Bearer {OTHER_TOKEN}")},
    ],
)
def test_token_never_appears_in_logs(
    api: responses.RequestsMock, capsys: pytest.CaptureFixture[str], answer: dict[str, Any]
) -> None:
    # A token of its own: run_from_args must register it, no earlier test may have done so.
    api.get(FIRST_PAGE, **answer)

    assert cp.run_from_args(args("--once"), {**ENV, "GITHUB_TOKEN": OTHER_TOKEN}) == 1

    out = capsys.readouterr().out
    assert api.calls[0].request.headers["Authorization"] == f"Bearer {OTHER_TOKEN}"
    assert "could not list the workflow's runs" in out
    assert OTHER_TOKEN not in out


def test_logs_are_json_lines_with_run_id_and_action(gh: Harness) -> None:
    stream = io.StringIO()
    setup_logging("debug", stream)
    gh.api.get(FIRST_PAGE, json=runs_body((2, "queued"), (1, "in_progress")))
    gh.api.post(cancel_url(2), status=202)

    gh.loop_until(calls=2)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(list(line)[:4] == ["ts", "level", "msg", "context"] for line in lines)
    (cancelled,) = [line for line in lines if line["msg"].startswith("cancelled run 2")]
    assert cancelled["level"] == "info"
    assert cancelled["context"] == {"run_id": 2, "action": "cancel", "status": "queued"}
    assert lines[-1]["context"] == {"action": "stop"}


def test_sends_github_headers_and_a_timeout(gh: Harness) -> None:
    gh.api.get(FIRST_PAGE, json=runs_body())

    gh.tick()

    request = gh.api.calls[0].request
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert request.headers["User-Agent"] == "threads-metrics-cancel-pending"
    assert request.req_kwargs["timeout"] == cp.REQUEST_TIMEOUT_S


def test_dry_run_sends_no_cancel(
    api: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get(FIRST_PAGE, json=runs_body((2, "pending"), (1, "in_progress")))

    assert cp.run_from_args(args("--once", "--dry-run"), ENV) == 0

    assert [call.request.method for call in api.calls] == ["GET"]
    assert "dry run: would cancel run 2 (pending)" in capsys.readouterr().out


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1), (401, 1)])
def test_once_exits_1_when_pass_fails(api: responses.RequestsMock, status: int, code: int) -> None:
    api.get(FIRST_PAGE, status=status, json=runs_body())

    assert cp.run_from_args(args("--once"), ENV) == code

    # One pass: a failure is not retried.
    assert len(api.calls) == 1


def test_help_lists_every_option_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cp.main(["--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ("--interval", "--once", "--workflow", "--dry-run", "threads-metrics.yml"):
        assert word in out
    for variable in ("GITHUB_OWNER", "GITHUB_REPO", "GITHUB_REPOSITORY", "GITHUB_TOKEN"):
        assert variable in out
    assert "GITHUB_API_URL" in out and "https://api.github.com" in out and "LOG_LEVEL" in out
    assert "actions: write" in out


@pytest.mark.parametrize("interval", ["0", "0.5", "soon"])
def test_interval_below_one_second_is_refused(interval: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        args("--interval", interval)

    assert exit_info.value.code == 2
