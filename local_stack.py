"""Both simulators on 127.0.0.1 and the environment that points the real sync at them.

Used by the end-to-end tests and the benchmarks; nothing here talks to Google or Meta.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import sheets_simulator
import threads_simulator
from sink import ACCOUNTS_SHEET, DATA_SHEET

ROOT = Path(__file__).resolve().parent
SPREADSHEET_ID = "local-spreadsheet"
SERVICE_ACCOUNT_EMAIL = "threads-metrics@local-test.iam.gserviceaccount.com"


def service_account_info(token_uri: str) -> dict[str, Any]:
    """A service account key with a freshly generated RSA key and a local token endpoint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "local-test",
        "private_key_id": "local-key",
        "private_key": pem,
        "client_email": SERVICE_ACCOUNT_EMAIL,
        "token_uri": token_uri,
    }


@dataclass
class LocalStack:
    """A running Threads simulator and Sheets simulator, and where the sync keeps its state."""

    threads: threads_simulator.ThreadsWorld
    sheets: sheets_simulator.SheetsWorld
    threads_url: str
    sheets_url: str
    state_file: Path
    key_info: dict[str, Any] = field(repr=False)

    def env(self, **overrides: str) -> dict[str, str]:
        """The sync's environment: only what points it at the simulators, plus overrides."""
        base = {
            "PATH": os.environ.get("PATH", ""),
            "ID_GOOGLE_TABLE": SPREADSHEET_ID,
            "GOOGLE_SERVICE_ACCOUNT_JSON": json.dumps(self.key_info),
            "GOOGLE_SHEETS_API_BASE_URL": self.sheets_url,
            "THREADS_API_BASE_URL": self.threads_url,
            "THREADS_STATE_FILE": str(self.state_file),
        }
        return {**base, **overrides}

    def start_sync(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """Start `python threads_metrics.py ARGS` as a subprocess, as GitHub Actions would."""
        return subprocess.Popen(
            [sys.executable, str(ROOT / "threads_metrics.py"), *args],
            env=self.env(**env),
            cwd=self.state_file.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_sync(
        self, *args: str, timeout_s: float = 120, **env: str
    ) -> subprocess.CompletedProcess:
        """Run the sync to its end; returns the finished process with stdout and stderr."""
        process = self.start_sync(*args, **env)
        stdout, stderr = process.communicate(timeout=timeout_s)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def set_accounts(self, extra_columns: dict[str, list[Any]] | None = None) -> None:
        """Write accounts_threads: one row per simulated account, with its current token."""
        names = list(self.threads.accounts)
        extra = extra_columns or {}
        header = ["account_name", "access_token", *extra]
        rows = [
            [name, self.threads.accounts[name].token, *(values[i] for values in extra.values())]
            for i, name in enumerate(names)
        ]
        self.sheets.set_values(SPREADSHEET_ID, ACCOUNTS_SHEET, [header, *rows], input_option="RAW")

    def data(self, render: str = "UNFORMATTED_VALUE") -> list[list[Any]]:
        """The data sheet as a values.get would return it (empty when it does not exist)."""
        book = self.sheets.spreadsheets[SPREADSHEET_ID]
        if book.find(DATA_SHEET) is None:
            return []
        return self.sheets.values(SPREADSHEET_ID, DATA_SHEET, render)


@contextlib.contextmanager
def local_stack(
    threads_world: threads_simulator.ThreadsWorld,
    state_dir: Path,
    sheets_world: sheets_simulator.SheetsWorld | None = None,
) -> Iterator[LocalStack]:
    """Serve both simulators on 127.0.0.1 with a spreadsheet holding accounts_threads."""
    sheets_world = sheets_world or sheets_simulator.SheetsWorld(require_auth=True)
    if SPREADSHEET_ID not in sheets_world.spreadsheets:
        sheets_world.create_spreadsheet(SPREADSHEET_ID, (ACCOUNTS_SHEET,))
    with (
        threads_simulator.serve(threads_world) as threads_server,
        sheets_simulator.serve(sheets_world) as sheets_server,
    ):
        stack = LocalStack(
            threads_world,
            sheets_world,
            threads_server.base_url,
            sheets_server.base_url,
            Path(state_dir) / ".threads_state.json",
            service_account_info(sheets_server.base_url + "/token"),
        )
        stack.set_accounts()
        yield stack
