"""End to end: `python cancel_pending.py` against a real HTTP server on 127.0.0.1 stops within a
second of SIGTERM or SIGINT, even in the middle of an hour-long rate-limit wait or a request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghs_ServerTestToken0123456789abcdef"
# Long enough that only the signal can end the wait before the test's own timeout.
FAR_S = 3600


class FakeGitHub(ThreadingHTTPServer):
    """Answers every request as the chosen mode says and counts the requests."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = mode
        self.requests = 0
        self.first_request = threading.Event()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    """403 with retry-after, 403 with no requests left until a far reset, or no answer yet."""

    server: FakeGitHub

    def do_GET(self) -> None:
        self.server.requests += 1
        self.server.first_request.set()
        if self.server.mode == "in-flight":
            # Hold the request open, as a stalled connection would.
            self.server.release.wait(FAR_S)
            return
        if self.server.mode == "retry-after":
            headers = {"retry-after": str(FAR_S)}
        else:
            reset = int(time.time()) + FAR_S
            headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
        body = json.dumps({"message": "API rate limit exceeded"}).encode()
        self.send_response(403)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture()
def github(request: pytest.FixtureRequest) -> Iterator[FakeGitHub]:
    server = FakeGitHub(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def start(server: FakeGitHub) -> subprocess.Popen[str]:
    """Start the companion in a loop against the fake server, with a clean environment."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NO_PROXY": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        "GITHUB_API_URL": server.url,
        "GITHUB_REPOSITORY": "octo/metrics",
        "GITHUB_TOKEN": TOKEN,
    }
    return subprocess.Popen(
        [sys.executable, "cancel_pending.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("github", "sig"),
    [
        ("retry-after", signal.SIGTERM),
        ("retry-after", signal.SIGINT),
        ("ratelimit-reset", signal.SIGTERM),
        ("ratelimit-reset", signal.SIGINT),
        ("in-flight", signal.SIGTERM),
    ],
    indirect=["github"],
)
def test_signal_during_a_long_wait_exits_0_within_one_second(
    github: FakeGitHub, sig: signal.Signals
) -> None:
    process = start(github)
    try:
        assert github.first_request.wait(10), "the companion never sent a request"
        # Let it take the answer in and start waiting (or sit in the request).
        time.sleep(0.3)
        assert process.poll() is None, process.communicate()
        sent = time.monotonic()
        process.send_signal(sig)
        out, err = process.communicate(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err
    assert elapsed < 1.0
    assert "Traceback" not in err
    assert TOKEN not in out + err
    # Nothing is sent while the limit is in force.
    assert github.requests == 1
    if github.mode != "in-flight":
        assert '"msg": "stopped"' in out
        assert "API rate limit exceeded" in out
