"""The HTTP front ends both simulators share: a threaded server on 127.0.0.1 and a `responses`
adapter, each feeding requests to a world's `handle(method, url, headers, body)`.

Standard library only (the `responses` adapter imports requests lazily).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class SimResponse:
    """One HTTP answer: status, headers and raw body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)


class DropConnection(Exception):  # noqa: N818 - the name says what happens to the socket
    """Raised by `handle` when the connection must be closed without any answer."""


class World(Protocol):
    """Anything that answers requests: the Threads world, the Sheets world."""

    def handle(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> SimResponse:
        """Answer one request (or raise DropConnection)."""
        ...


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that tracks its connections and stays quiet when clients hang up."""

    daemon_threads = True  # never block shutdown on idle keep-alive connections
    request_queue_size = 1024  # benchmarks open many connections at once
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], world: World) -> None:
        super().__init__(address, _Handler)
        self.world = world
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection, then serve it in its own thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget a finished connection."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut open (keep-alive) connections so a stopped server really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore disconnects; report anything else (a simulator bug) as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Feeds every request to `world.handle`; HTTP/1.1 keep-alive with Content-Length."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and delayed ACKs
    # add ~40 ms to every answer.
    disable_nagle_algorithm = True
    timeout = 60  # idle keep-alive connections end eventually
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        try:
            answer = self.server.world.handle(
                self.command, f"http://{host}{self.path}", dict(self.headers), body
            )
        except DropConnection:
            self.close_connection = True  # close the socket without a status line
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away mid-answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: tests read stats, not logs."""


class SimServer:
    """A running simulator server: `base_url`, `world`, `stop()`; also a context manager."""

    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self._httpd = _Server((host, port), world)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() returns within 50 ms
            name=f"{type(world).__name__}-server",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections (idempotent)."""
        if not self._stopped:
            self._stopped = True
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(world: World, host: str = "127.0.0.1", port: int = 0) -> Iterator[SimServer]:
    """Run `world` behind a real HTTP server in a background thread for the `with` block."""
    server = SimServer(world, host, port)
    try:
        yield server
    finally:
        server.stop()


def register_with_responses(
    rsps: Any,
    world: World,
    base_url: str,
    methods: tuple[str, ...] = ANY_METHOD,
    extra_urls: tuple[tuple[str, str], ...] = (),
) -> None:
    """Route a `responses.RequestsMock` to `world.handle` for every URL under base_url (and the
    (method, url) pairs in extra_urls); a simulated drop raises requests' ConnectionError."""
    import requests  # lazily: the simulators themselves need only the standard library

    def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        try:
            answer = world.handle(request.method, request.url, dict(request.headers), body)
        except DropConnection as error:
            raise requests.exceptions.ConnectionError(f"simulated drop: {error}") from None
        return answer.status, answer.headers, answer.body

    pattern = re.compile(re.escape(base_url.rstrip("/")) + r"/.*")
    for method in methods:
        rsps.add_callback(method, pattern, callback=callback, content_type=None)
    for method, url in extra_urls:
        rsps.add_callback(method, url, callback=callback, content_type=None)
