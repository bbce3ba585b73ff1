"""Settings of the sync job, read from environment variables and checked before any network call."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logs import LOG_LEVELS

DEFAULT_POST_FIELDS = (
    "id",
    "permalink",
    "text",
    "media_type",
    "media_url",
    "timestamp",
    "shortcode",
    "username",
    "is_quote_post",
)

REQUIRED_POST_FIELDS = ("id", "timestamp", "media_type")

# name: (default shown in --help and .env.example, one-line description)
VARIABLES: dict[str, tuple[str, str]] = {
    "ID_GOOGLE_TABLE": ("(required)", "spreadsheet id from the sheet's URL"),
    "GOOGLE_SERVICE_ACCOUNT_JSON": ("(required)", "service account key: JSON text or a file path"),
    "THREADS_WORKBOOK": (
        "",
        "local .xlsx used instead of Google Sheets (then the two above are unused)",
    ),
    "URL_GAS_RAZVERTIVANIA": ("", "optional URL that receives a JSON summary after each write"),
    "THREADS_API_BASE_URL": ("https://graph.threads.net", "Threads Graph API base URL"),
    "THREADS_POST_FIELDS": (",".join(DEFAULT_POST_FIELDS), "post fields to request"),
    "THREADS_REQUEST_TIMEOUT": ("30", "seconds per HTTP request"),
    "THREADS_CONCURRENCY": ("8", "maximum Threads requests in flight (integer >= 1)"),
    "THREADS_STATE_FILE": (".threads_state.json", "where cursors and freshness marks are kept"),
    "THREADS_METRICS_TTL_MIN": (
        "60",
        "minutes until a post's insights are fetched again (0 = always)",
    ),
    "THREADS_RUN_TIMEOUT_MIN": ("100", "minutes after which the run stops starting requests"),
    "THREADS_HEARTBEAT_SEC": ("30", "seconds between heartbeat log lines"),
    "THREADS_TOKEN_REFRESH_DAYS": ("7", "refresh a token expiring within this many days"),
    "LOG_LEVEL": ("info", "debug, info, warning or error"),
    "GOOGLE_SHEETS_API_BASE_URL": ("", "testing only: another Sheets API endpoint"),
}

_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class ConfigError(Exception):
    """A variable is missing or invalid; the message names it and says what to do."""


def read_required(env: Mapping[str, str], name: str) -> str:
    """Return a variable that must be set and non-blank."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: set it (see README, section 'Настройка')")
    return value


def read_number(
    env: Mapping[str, str],
    name: str,
    default: str,
    *,
    minimum: float,
    strict: bool = False,
    integer: bool = False,
) -> float:
    """Return a numeric variable (or its default) that is >= minimum (> minimum when strict)."""
    raw = env.get(name, "").strip() or default
    kind = "an integer" if integer else "a number"
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {kind}") from None
    too_small = value <= minimum if strict else value < minimum
    if too_small or value != value or value in (float("inf"), float("-inf")):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name}={raw!r} must be {kind} {bound}")
    return value


def read_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return a variable that must be one of the choices (case-insensitive)."""
    value = (env.get(name, "").strip() or default).lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def read_url(env: Mapping[str, str], name: str, default: str = "") -> str:
    """Return an http(s) URL without a trailing slash, or the default."""
    value = env.get(name, "").strip() or default
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def read_service_account(env: Mapping[str, str]) -> dict[str, Any]:
    """Return the service account key from JSON text or from a file that holds it."""
    name = "GOOGLE_SERVICE_ACCOUNT_JSON"
    raw = read_required(env, name)
    if not raw.startswith("{"):
        path = Path(raw).expanduser()
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                f"{name} is neither JSON nor a readable file ({error.strerror})"
            ) from None
    try:
        info = json.loads(raw)
    except json.JSONDecodeError as error:
        # The message must not quote the text: it holds a private key.
        raise ConfigError(f"{name} is not valid JSON (line {error.lineno})") from None
    required = ("client_email", "private_key")
    missing = [key for key in required if not isinstance(info, dict) or not info.get(key)]
    if missing:
        raise ConfigError(
            f"{name} lacks {', '.join(missing)}: paste the whole key file of a service account"
        )
    return info


def read_post_fields(env: Mapping[str, str]) -> tuple[str, ...]:
    """Return THREADS_POST_FIELDS as a tuple that always starts with `id`."""
    raw = env.get("THREADS_POST_FIELDS", "").strip()
    if not raw:
        return DEFAULT_POST_FIELDS
    fields = [field.strip() for field in raw.split(",") if field.strip()]
    bad = [field for field in fields if not _FIELD_NAME.match(field)]
    if bad:
        raise ConfigError(f"THREADS_POST_FIELDS has invalid field names: {', '.join(bad)}")
    # The sync itself needs these: the id is the merge key, the timestamp drives the incremental
    # listing, and the media type tells reposts (which have no insights) apart.
    needed = [field for field in REQUIRED_POST_FIELDS if field not in fields]
    return ("id", *dict.fromkeys(field for field in [*fields, *needed] if field != "id"))


@dataclass(frozen=True)
class Config:
    """Everything the sync job needs to know before it starts."""

    spreadsheet_id: str
    service_account_info: dict[str, Any] | None
    workbook_path: str
    report_url: str
    threads_base_url: str
    post_fields: tuple[str, ...]
    request_timeout_s: float
    concurrency: int
    state_file: str
    metrics_ttl_s: float
    run_timeout_s: float
    heartbeat_s: float
    token_refresh_days: float
    log_level: str
    sheets_base_url: str

    def __repr__(self) -> str:
        # The service account key holds a private key: never print it.
        return f"Config(spreadsheet_id={self.spreadsheet_id!r}, workbook={self.workbook_path!r})"


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Read and check every variable; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    workbook_path = env.get("THREADS_WORKBOOK", "").strip()
    return Config(
        spreadsheet_id="" if workbook_path else read_required(env, "ID_GOOGLE_TABLE"),
        service_account_info=None if workbook_path else read_service_account(env),
        workbook_path=workbook_path,
        report_url=read_url(env, "URL_GAS_RAZVERTIVANIA"),
        threads_base_url=read_url(env, "THREADS_API_BASE_URL", "https://graph.threads.net"),
        post_fields=read_post_fields(env),
        request_timeout_s=read_number(env, "THREADS_REQUEST_TIMEOUT", "30", minimum=0, strict=True),
        concurrency=int(read_number(env, "THREADS_CONCURRENCY", "8", minimum=1, integer=True)),
        state_file=env.get("THREADS_STATE_FILE", "").strip() or ".threads_state.json",
        metrics_ttl_s=60 * read_number(env, "THREADS_METRICS_TTL_MIN", "60", minimum=0),
        run_timeout_s=60
        * read_number(env, "THREADS_RUN_TIMEOUT_MIN", "100", minimum=0, strict=True),
        heartbeat_s=read_number(env, "THREADS_HEARTBEAT_SEC", "30", minimum=0, strict=True),
        token_refresh_days=read_number(env, "THREADS_TOKEN_REFRESH_DAYS", "7", minimum=0),
        log_level=read_choice(env, "LOG_LEVEL", "info", LOG_LEVELS),
        sheets_base_url=read_url(env, "GOOGLE_SHEETS_API_BASE_URL"),
    )
