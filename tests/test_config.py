"""Configuration from the environment: every bad value is one clear line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from config import DEFAULT_POST_FIELDS, ConfigError, load_config
from tests.conftest import ROOT

KEY = {"type": "service_account", "client_email": "bot@x.iam", "private_key": "SECRET-KEY-TEXT"}


def env(**overrides: str) -> dict[str, str]:
    """A valid environment with some variables replaced."""
    base = {"ID_GOOGLE_TABLE": "sheet-id", "GOOGLE_SERVICE_ACCOUNT_JSON": json.dumps(KEY)}
    return {**base, **overrides}


def test_defaults_apply_when_only_required_variables_are_set():
    config = load_config(env())
    assert config.concurrency == 8
    assert config.metrics_ttl_s == 3600
    assert config.run_timeout_s == 6000
    assert config.request_timeout_s == 30
    assert config.post_fields == DEFAULT_POST_FIELDS
    assert config.threads_base_url == "https://graph.threads.net"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ID_GOOGLE_TABLE", "", "ID_GOOGLE_TABLE is not set"),
        ("GOOGLE_SERVICE_ACCOUNT_JSON", "", "GOOGLE_SERVICE_ACCOUNT_JSON is not set"),
        ("THREADS_CONCURRENCY", "0", "THREADS_CONCURRENCY='0' must be an integer >= 1"),
        ("THREADS_CONCURRENCY", "2.5", "THREADS_CONCURRENCY='2.5' is not an integer"),
        ("THREADS_METRICS_TTL_MIN", "-1", "THREADS_METRICS_TTL_MIN='-1' must be a number >= 0"),
        ("THREADS_RUN_TIMEOUT_MIN", "0", "THREADS_RUN_TIMEOUT_MIN='0' must be a number > 0"),
        ("THREADS_REQUEST_TIMEOUT", "soon", "THREADS_REQUEST_TIMEOUT='soon' is not a number"),
        ("THREADS_HEARTBEAT_SEC", "nan", "THREADS_HEARTBEAT_SEC='nan' must be a number > 0"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud' must be one of: debug, info, warning, error"),
        ("THREADS_API_BASE_URL", "graph.threads.net", "THREADS_API_BASE_URL must be an http"),
        ("THREADS_POST_FIELDS", "id,like count", "THREADS_POST_FIELDS has invalid field names"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(name: str, value: str, expected: str):
    with pytest.raises(ConfigError, match="^" + expected.replace("(", r"\(").replace(".", r"\.")):
        load_config(env(**{name: value}))


def test_service_account_json_may_be_a_file_path(tmp_path):
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(KEY))
    assert load_config(env(GOOGLE_SERVICE_ACCOUNT_JSON=str(key_file))).service_account_info == KEY


def test_broken_service_account_json_never_quotes_the_key():
    with pytest.raises(ConfigError) as raised:
        load_config(env(GOOGLE_SERVICE_ACCOUNT_JSON='{"private_key": "SECRET-KEY-TEXT", '))
    assert "SECRET-KEY-TEXT" not in str(raised.value)
    assert "not valid JSON" in str(raised.value)


def test_service_account_without_private_key_is_rejected():
    with pytest.raises(ConfigError, match="lacks private_key"):
        load_config(env(GOOGLE_SERVICE_ACCOUNT_JSON=json.dumps({"client_email": "a@b"})))


def test_post_fields_override_always_keeps_the_fields_the_sync_needs():
    config = load_config(env(THREADS_POST_FIELDS="text, permalink,id"))
    assert config.post_fields == ("id", "text", "permalink", "timestamp", "media_type")


def test_a_workbook_replaces_the_google_variables():
    config = load_config({"THREADS_WORKBOOK": "book.xlsx"})
    assert config.workbook_path == "book.xlsx"
    assert config.service_account_info is None


def test_config_repr_hides_the_private_key():
    assert "SECRET-KEY-TEXT" not in repr(load_config(env()))


def test_cli_with_missing_variable_exits_2_with_one_line_and_no_network(tmp_path):
    clean_env = {"PATH": os.environ["PATH"], "THREADS_API_BASE_URL": "http://127.0.0.1:9"}
    finished = subprocess.run(
        [sys.executable, str(ROOT / "threads_metrics.py")],
        env=clean_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.splitlines() == [
        "threads_metrics: configuration error: ID_GOOGLE_TABLE is not set: set it "
        "(see README, section 'Настройка')"
    ]
    assert not (tmp_path / ".threads_state.json").exists()


def test_cli_help_lists_subcommands_and_every_variable():
    finished = subprocess.run(
        [sys.executable, str(ROOT / "threads_metrics.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0
    for word in ("run", "cancel-pending", "demo", "THREADS_CONCURRENCY", "LOG_LEVEL"):
        assert word in finished.stdout
