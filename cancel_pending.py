"""Cancel the queued runs of the sync workflow while one of its runs is in progress.

Runs next to the sync (see README, "cancel_pending.py"): every tick it lists the workflow's runs
with one conditional request and, if a run is in progress, cancels the runs that have not
started. It honours GitHub's rate-limit answers, backs off on errors and stops at once on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from config import ConfigError, read_choice, read_number, read_required, read_url
from logs import LOG_LEVELS, context, register_secret, setup_logging

log = logging.getLogger(__name__)

DEFAULT_WORKFLOW = "threads-metrics.yml"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 1.0

IN_PROGRESS = "in_progress"
COMPLETED = "completed"
# Runs that have not started. A run held by the workflow's concurrency group is "pending".
NOT_STARTED_STATUSES = frozenset({"queued", "pending", "requested", "waiting"})

PER_PAGE = 100
# Runs come newest first; the pages after the first matter only when the first is all unfinished.
MAX_PAGES = 10
REQUEST_TIMEOUT_S = 15.0
API_VERSION = "2022-11-28"
USER_AGENT = "threads-metrics-cancel-pending"

RATE_LIMIT_STATUSES = (403, 429)
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 300.0
# Secondary limits without headers: GitHub asks for at least a minute before the next request.
RATE_LIMIT_MIN_WAIT_S = 60.0
# x-ratelimit-reset is in whole seconds; a wait past the hourly window means a skewed clock.
RESET_MARGIN_S = 1.0
RATE_LIMIT_WINDOW_S = 3600.0
JITTER_FRACTION = 0.2
MAX_BACKOFF_DOUBLINGS = 16

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNAL_POLL_S = 0.1
STOP_GRACE_S = 0.5

TOKEN_REFUSED = "GITHUB_TOKEN was refused (401): check the secret"
NOT_PERMITTED = "the token needs actions: write (see README)"

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")

DESCRIPTION = "Cancel the queued runs of a workflow while one of its runs is in progress."
HELP_EPILOG = f"""\
environment variables:
  GITHUB_OWNER, GITHUB_REPO  repository owner and name (required unless GITHUB_REPOSITORY is set)
  GITHUB_REPOSITORY          owner/repo, set by GitHub Actions; used when the two above are unset
  GITHUB_TOKEN               (required) token allowed to cancel runs: "permissions: actions: write"
                             for the Actions GITHUB_TOKEN; Actions read and write for a
                             fine-grained personal token
  GITHUB_API_URL             REST API root (default {DEFAULT_API_URL}; Actions sets it, and it
                             differs on GitHub Enterprise Server)
  LOG_LEVEL                  debug, info, warning or error (default info)

exit codes: 0 stopped by SIGTERM/SIGINT, or the --once pass succeeded; 1 the --once pass failed;
2 configuration error (one line on stderr, no request sent)."""


class GitHubError(Exception):
    """GitHub refused or failed a request; carries its status and message, never the token."""

    def __init__(
        self, status: int | None, message: str, wait_s: float = 0.0, transient: bool = True
    ) -> None:
        super().__init__(f"GitHub answered {status}: {message}" if status else message)
        self.status = status
        self.wait_s = wait_s
        # False when waiting will not help: a person has to fix the token or the settings.
        self.transient = transient


@dataclass(frozen=True)
class GitHubSettings:
    """Where the workflow lives and how to reach it."""

    owner: str
    repo: str
    token: str = field(repr=False)
    api_url: str
    workflow: str
    log_level: str


@dataclass(frozen=True)
class WorkflowRun:
    """The fields of a workflow run that the decision and the logs need."""

    id: int
    status: str


@dataclass
class CancelState:
    """What this process remembers between ticks."""

    etag: str | None = None
    runs: list[WorkflowRun] = field(default_factory=list)
    cancelled: set[int] = field(default_factory=set)
    # Answered 409: completed meanwhile, or stuck and refusing every cancel.
    refused: set[int] = field(default_factory=set)


@dataclass
class TickResult:
    """What one pass did; ok is False when a request of the pass failed."""

    ok: bool = True
    cancelled: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


class RateLimitGate:
    """When the next request may go: rate-limit answers and failures push that time back."""

    def __init__(
        self,
        stop: threading.Event,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.stop = stop
        # Wall-clock time, because x-ratelimit-reset is given in epoch seconds.
        self._clock = clock
        self._jitter = jitter
        self.not_before = 0.0
        self.failures = 0

    def remaining(self) -> float:
        """Seconds until a request may be sent (0 when it may be sent now)."""
        return max(0.0, self.not_before - self._clock())

    def is_open(self) -> bool:
        """Whether a request may be sent now."""
        return not self.stop.is_set() and self.remaining() == 0

    def wait(self, seconds: float) -> bool:
        """Wait up to seconds on the stop event; return True at once when a stop is requested."""
        return self.stop.wait(seconds)

    def record_success(self, headers: Mapping[str, str]) -> None:
        """Reset the backoff; hold requests until the reset if the answer says none are left."""
        self.failures = 0
        reset_wait = self._reset_wait(headers)
        if headers.get("x-ratelimit-remaining") == "0" and reset_wait is not None:
            log.warning("no requests left until the reset in %.0f s", self._hold(reset_wait))

    def record_failure(self) -> float:
        """Back off exponentially after a 5xx, a network error or another failure."""
        self.failures += 1
        return self._hold(self._backoff(BACKOFF_BASE_S))

    def record_rate_limit(self, headers: Mapping[str, str]) -> float:
        """Hold requests as GitHub asks: retry-after, else the reset, else at least a minute."""
        self.failures += 1
        retry_after = _header_number(headers, "retry-after")
        if retry_after is not None:
            return self._hold(max(retry_after, 1.0))
        if headers.get("x-ratelimit-remaining") == "0":
            reset_wait = self._reset_wait(headers)
            if reset_wait is not None:
                return self._hold(reset_wait)
        return self._hold(self._backoff(RATE_LIMIT_MIN_WAIT_S))

    def _reset_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until x-ratelimit-reset, or None when it is missing or already past."""
        reset = _header_number(headers, "x-ratelimit-reset")
        if reset is None or reset <= self._clock():
            return None
        return min(reset - self._clock() + RESET_MARGIN_S, RATE_LIMIT_WINDOW_S + RESET_MARGIN_S)

    def _backoff(self, base: float) -> float:
        """base doubled per consecutive failure, plus up to JITTER_FRACTION, capped."""
        delay = base * 2 ** min(self.failures - 1, MAX_BACKOFF_DOUBLINGS)
        return min(BACKOFF_CAP_S, delay * (1 + JITTER_FRACTION * self._jitter()))

    def _hold(self, seconds: float) -> float:
        """Send nothing for the next seconds; return them."""
        self.not_before = max(self.not_before, self._clock() + seconds)
        return seconds


@dataclass(frozen=True)
class GitHubClient:
    """The session, settings and gate that every request goes through."""

    session: requests.Session
    settings: GitHubSettings
    gate: RateLimitGate

    @property
    def repo_url(self) -> str:
        """API URL of the repository."""
        return f"{self.settings.api_url}/repos/{self.settings.owner}/{self.settings.repo}"


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A header holding a whole number of seconds, or None."""
    value = (headers.get(name) or "").strip()
    return float(value) if value.isdigit() else None


def load_settings(
    env: Mapping[str, str] | None = None, workflow: str = DEFAULT_WORKFLOW
) -> GitHubSettings:
    """Read and check every variable; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    if env.get("GITHUB_OWNER", "").strip() or env.get("GITHUB_REPO", "").strip():
        owner, repo = read_required(env, "GITHUB_OWNER"), read_required(env, "GITHUB_REPO")
        names = ("GITHUB_OWNER", "GITHUB_REPO")
    else:
        full = env.get("GITHUB_REPOSITORY", "").strip()
        if not full:
            raise ConfigError("GITHUB_OWNER and GITHUB_REPO (or GITHUB_REPOSITORY) are not set")
        owner, _, repo = full.partition("/")
        names = ("GITHUB_REPOSITORY", "GITHUB_REPOSITORY")
    for name, value in zip(names, (owner, repo), strict=True):
        if not _NAME.match(value):
            shown = env.get(name, "").strip()
            raise ConfigError(f"{name}={shown!r} is not a valid owner/repository name")
    token = read_required(env, "GITHUB_TOKEN")
    if not _TOKEN.match(token):
        # Never quote the value: it is the secret.
        raise ConfigError("GITHUB_TOKEN holds spaces or control characters: paste the token alone")
    if not _NAME.match(workflow):
        raise ConfigError(f"--workflow {workflow!r} must be a file name like {DEFAULT_WORKFLOW}")
    return GitHubSettings(
        owner=owner,
        repo=repo,
        token=token,
        api_url=read_url(env, "GITHUB_API_URL", DEFAULT_API_URL),
        workflow=workflow,
        log_level=read_choice(env, "LOG_LEVEL", "info", LOG_LEVELS),
    )


def make_session(token: str) -> requests.Session:
    """A session that sends GitHub's recommended headers and the token."""
    session = requests.Session()
    session.headers.update(
        {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
            "User-Agent": USER_AGENT,
        }
    )
    return session


def _error_message(response: requests.Response) -> str:
    """GitHub's own error message from a JSON body, else the reason phrase."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason or "no message")


def _send(
    client: GitHubClient, method: str, url: str, *, accept: tuple[int, ...] = (), **kwargs: Any
) -> requests.Response:
    """Send one request if the gate allows it; raise GitHubError unless it succeeded."""
    gate = client.gate
    if not gate.is_open():
        raise GitHubError(None, "held back: a limit or backoff is in force", gate.remaining())
    try:
        response = client.session.request(method, url, timeout=REQUEST_TIMEOUT_S, **kwargs)
    except requests.RequestException as error:
        raise GitHubError(None, f"GitHub unreachable: {error}", gate.record_failure()) from None
    status = response.status_code
    if status < 400 or status in accept:
        gate.record_success(response.headers)
        return response
    message = _error_message(response)
    if status in RATE_LIMIT_STATUSES:
        wait_s = gate.record_rate_limit(response.headers)
        if status == 429 or _is_rate_limit(response.headers, message):
            raise GitHubError(status, message, wait_s)
        # Same wait (GitHub does not always say which limit it is), but likely a missing permission.
        raise GitHubError(status, f"{message}: {NOT_PERMITTED}", wait_s, transient=False)
    wait_s = gate.record_failure()
    if status == 401:
        raise GitHubError(status, TOKEN_REFUSED, wait_s, transient=False)
    raise GitHubError(status, message, wait_s, transient=status >= 500)


def _is_rate_limit(headers: Mapping[str, str], message: str) -> bool:
    """Whether a 403 is a rate limit rather than a refusal."""
    limited = "retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"
    return limited or "rate limit" in message.lower()


def _parse_runs(response: requests.Response) -> list[WorkflowRun]:
    """The runs of one page of the list endpoint."""
    try:
        items = response.json()["workflow_runs"]
        return [WorkflowRun(int(item["id"]), str(item["status"])) for item in items]
    except (ValueError, KeyError, TypeError):
        raise GitHubError(response.status_code, "answer without a workflow_runs list") from None


def fetch_runs(client: GitHubClient, state: CancelState) -> tuple[list[WorkflowRun], bool]:
    """Return the runs that may be unfinished, newest first, and whether the list changed."""
    # https://docs.github.com/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow
    url = f"{client.repo_url}/actions/workflows/{client.settings.workflow}/runs"
    # The ETag covers the first page, where new and unfinished runs are; a 304 costs nothing.
    headers = {"If-None-Match": state.etag} if state.etag else {}
    response = _send(client, "GET", url, params={"per_page": PER_PAGE}, headers=headers)
    if response.status_code == 304:
        return state.runs, False
    etag = response.headers.get("ETag")
    page = _parse_runs(response)
    runs = list(page)
    # Only a page of nothing but unfinished runs can be followed by more of them; the older pages
    # are history, and reading them on every change would spend the hourly budget.
    for _ in range(MAX_PAGES - 1):
        next_url = response.links.get("next", {}).get("url")
        if not next_url or not page or any(run.status == COMPLETED for run in page):
            break
        if not next_url.startswith(client.settings.api_url + "/"):
            log.warning("not following a next link to another host", extra=context(action="list"))
            break
        # The next URL already carries per_page and page: sending params again would repeat them.
        response = _send(client, "GET", next_url)
        page = _parse_runs(response)
        runs.extend(page)
    # Saved together, and only once every page was read, so a 304 never stands for a partial list.
    state.etag, state.runs = etag, runs
    return runs, True


def runs_to_cancel(runs: list[WorkflowRun], state: CancelState) -> list[WorkflowRun]:
    """The not-started runs to cancel: none unless a run is in progress, none handled before."""
    if not any(run.status == IN_PROGRESS for run in runs):
        return []
    handled = state.cancelled | state.refused
    targets: dict[int, WorkflowRun] = {}
    for run in runs:
        if run.status in NOT_STARTED_STATUSES and run.id not in handled:
            # A run that moved between two page reads may be listed twice.
            targets.setdefault(run.id, run)
    return list(targets.values())


def cancel_run(client: GitHubClient, run_id: int) -> bool:
    """Ask GitHub to cancel a run: True when accepted (202), False when refused (409)."""
    # https://docs.github.com/rest/actions/workflow-runs#cancel-a-workflow-run
    url = f"{client.repo_url}/actions/runs/{run_id}/cancel"
    return _send(client, "POST", url, accept=(409,)).status_code != 409


def _log_failure(what: str, error: GitHubError, run_id: int | None = None) -> None:
    """One line for a failed request: a warning if it is transient, an error if it needs a fix."""
    log.log(
        logging.WARNING if error.transient else logging.ERROR,
        "%s: %s (next request in %.0f s)",
        what,
        error,
        error.wait_s,
        extra=context(run_id=run_id, action="cancel" if run_id else "list", status=error.status),
    )


def tick(client: GitHubClient, state: CancelState, *, dry_run: bool = False) -> TickResult:
    """One pass: list the runs and, if one is in progress, cancel those that have not started."""
    result = TickResult()
    try:
        runs, changed = fetch_runs(client, state)
    except GitHubError as error:
        _log_failure("could not list the workflow's runs", error)
        result.ok = False
        return result
    targets = runs_to_cancel(runs, state)
    log.debug(
        "%d runs (%s), %d to cancel",
        len(runs),
        "changed" if changed else "unchanged",
        len(targets),
        extra=context(action="list"),
    )
    for run in targets:
        fields = context(run_id=run.id, action="cancel", status=run.status)
        if client.gate.stop.is_set():
            break
        if dry_run:
            log.info("dry run: would cancel run %d (%s)", run.id, run.status, extra=fields)
            # Remembered like a real cancel, so the same run is reported once.
            state.cancelled.add(run.id)
            result.cancelled.append(run.id)
            continue
        try:
            accepted = cancel_run(client, run.id)
        except GitHubError as error:
            _log_failure(f"could not cancel run {run.id}", error, run.id)
            # The gate is now closed: the other cancels wait for the next pass.
            result.ok = False
            break
        if accepted:
            state.cancelled.add(run.id)
            result.cancelled.append(run.id)
            log.info("cancelled run %d (%s)", run.id, run.status, extra=fields)
        else:
            state.refused.add(run.id)
            result.refused.append(run.id)
            log.warning("GitHub refused to cancel run %d (409); not retried", run.id, extra=fields)
    return result


def run_loop(client: GitHubClient, state: CancelState, *, interval: float, dry_run: bool) -> int:
    """Tick every interval, waiting out limits and backoff, until stopped; return 0."""
    gate = client.gate
    fields = context(action="start", workflow=client.settings.workflow, dry_run=dry_run or None)
    log.info("cancelling queued runs every %g s", interval, extra=fields)
    while not gate.stop.is_set():
        held = gate.remaining()
        if held > 0:
            if gate.wait(held):
                break
            continue
        try:
            tick(client, state, dry_run=dry_run)
        except Exception:
            # A bug must not end the guard for the rest of a 100-minute run: log it, back off.
            log.exception("unexpected error in a pass", extra=context(action="tick"))
            gate.record_failure()
        if gate.wait(interval):
            break
    log.info("stopped", extra=context(action="stop"))
    return 0


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set the stop event on SIGTERM and SIGINT; restore the previous handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda _sig, _frame: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _run_until_stopped(work: Callable[[], int], stop: threading.Event) -> int:
    """Run work in a thread; return its exit code, or 0 soon after a stop is requested."""
    outcome: list[int] = []

    def target() -> None:
        try:
            outcome.append(work())
        except Exception:
            log.exception("unexpected error", extra=context(action="stop"))
            outcome.append(1)

    # The worker may be inside a request for up to REQUEST_TIMEOUT_S; the main thread only
    # watches the stop event, so the process can exit within a second of the signal anyway.
    worker = threading.Thread(target=target, name="cancel-pending", daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        worker.join(SIGNAL_POLL_S)
    if stop.is_set():
        worker.join(STOP_GRACE_S)
        return 0
    return outcome[0] if outcome else 1


def _interval(raw: str) -> float:
    """Parse --interval: seconds, at least MIN_INTERVAL_S."""
    try:
        return read_number({"--interval": raw}, "--interval", "", minimum=MIN_INTERVAL_S)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of cancel_pending to a parser (its own, or a sub-command's)."""
    parser.add_argument(
        "--interval",
        type=_interval,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help=f"seconds between two passes (default {DEFAULT_INTERVAL_S:g}, at least 1)",
    )
    parser.add_argument("--once", action="store_true", help="one pass; exit 0, or 1 if it failed")
    parser.add_argument(
        "--workflow",
        default=DEFAULT_WORKFLOW,
        metavar="FILE",
        help=f"workflow file name or id (default {DEFAULT_WORKFLOW})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="log the runs that would be cancelled, cancel none"
    )


def run_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Check the settings, then run one pass or the loop; return the exit code."""
    try:
        settings = load_settings(os.environ if env is None else env, args.workflow)
    except ConfigError as error:
        print(f"cancel_pending: configuration error: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    register_secret(settings.token)
    stop = threading.Event()

    def work() -> int:
        with make_session(settings.token) as session:
            client = GitHubClient(session, settings, RateLimitGate(stop))
            if args.once:
                return 0 if tick(client, CancelState(), dry_run=args.dry_run).ok else 1
            return run_loop(client, CancelState(), interval=args.interval, dry_run=args.dry_run)

    with _stop_on_signals(stop):
        return _run_until_stopped(work, stop)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python cancel_pending.py`."""
    parser = argparse.ArgumentParser(
        prog="cancel_pending.py",
        description=DESCRIPTION,
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    return run_from_args(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
