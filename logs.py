"""JSON log lines on stdout (ts, level, msg, context) with every secret redacted."""

from __future__ import annotations

import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

LOG_LEVELS = ("debug", "info", "warning", "error")
REDACTED = "***"

# Query parameters and JSON keys whose values are secrets wherever they appear: Threads puts the
# token in the URL, and requests copies the URL into its exception messages.
_SECRET_PATTERNS = (
    re.compile(r"(?i)((?:access_token|client_secret|assertion)=)[^&\s'\"]+"),
    re.compile(r"(?i)(\"(?:access_token|private_key|refresh_token)\"\s*:\s*\")[^\"]*"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token)\s+)[^\s'\"]+"),
)

_known_secrets: set[str] = set()
_known_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Remember a secret (a token read from the sheet) so it is scrubbed from any text."""
    # Very short values would turn ordinary words into "***"; real tokens are long.
    if value and len(value) >= 8:
        with _known_secrets_lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Return text with tokens in URLs, JSON, headers and every registered secret replaced."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    with _known_secrets_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def context(**fields: Any) -> dict[str, Any]:
    """Build the `extra=` of a log call: `log.info("msg", extra=context(account="a"))`."""
    return {"context": {key: value for key, value in fields.items() if value is not None}}


class RedactingJsonFormatter(JsonFormatter):
    """One JSON object per line with the keys ts, level, msg, context; secrets redacted."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Put ts (ISO 8601 UTC) and level first, then msg and context."""
        log_data["ts"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname.lower()
        log_data["msg"] = record.getMessage()
        log_data["context"] = getattr(record, "context", None) or {}
        if record.exc_info:
            log_data["error"] = self.formatException(record.exc_info)

    def format(self, record: logging.LogRecord) -> str:
        """Serialise the record, then scrub secrets from the whole line."""
        return redact(super().format(record))


def setup_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send every log record to stdout as redacted JSON, replacing earlier handlers."""
    handler = logging.StreamHandler(stream or sys.stdout)
    # The formatter builds every key itself; the reserved list keeps extra record attributes out.
    handler.setFormatter(RedactingJsonFormatter(reserved_attrs=list(logging.LogRecord.__dict__)))
    root = logging.getLogger()
    for old_handler in list(root.handlers):
        root.removeHandler(old_handler)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries' debug lines would print raw URLs and payloads: keep them quiet.
    for noisy in ("urllib3", "google", "gspread", "gspread_dataframe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
