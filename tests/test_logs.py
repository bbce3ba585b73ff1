"""JSON log lines: the keys every line has, and secrets scrubbed from all of them."""

from __future__ import annotations

import io
import json
import logging

from logs import context, redact, register_secret, setup_logging


def log_lines(emit) -> list[dict]:
    """Run emit(logger) with JSON logging into a buffer; return the parsed lines."""
    buffer = io.StringIO()
    setup_logging("debug", stream=buffer)
    emit(logging.getLogger("test"))
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_line_has_ts_level_msg_and_context():
    lines = log_lines(lambda log: log.info("hello %s", "there", extra=context(account="a")))
    assert lines[0]["msg"] == "hello there"
    assert lines[0]["level"] == "info"
    assert lines[0]["context"] == {"account": "a"}
    assert lines[0]["ts"].endswith("Z") and "T" in lines[0]["ts"]


def test_access_token_in_a_url_is_redacted():
    url = "https://graph.threads.net/v1.0/me/threads?fields=id&access_token=THQWJ123&limit=5"
    assert redact(url) == url.replace("THQWJ123", "***")


def test_registered_token_is_scrubbed_from_messages_context_and_tracebacks():
    register_secret("TOKEN-abcdef-123456")

    def emit(log: logging.Logger) -> None:
        log.warning("bad TOKEN-abcdef-123456", extra=context(detail="TOKEN-abcdef-123456"))
        try:
            raise ValueError("TOKEN-abcdef-123456")
        except ValueError:
            log.exception("failed")

    lines = log_lines(emit)
    assert "TOKEN-abcdef-123456" not in json.dumps(lines)
    assert lines[0]["msg"] == "bad ***"
