"""One sheet-phase measurement in a fresh process: the product's read -> merge -> write of one
synthetic sheet, timed (with peak RSS) or traced (tracemalloc); prints one JSON line.

Run by bench_sheet_phase: `python bench_sheet_worker.py FOLDER ROWS [--trace] [--compare]`,
where FOLDER holds values.json (the values.get body) and fresh.json (the run's fresh records).
A process of its own per measurement, so its peak memory is the phase's and nothing else's.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import requests
from requests.adapters import BaseAdapter

import sheets_simulator
from bench_sheet_data import OWNED, SHEET_COLUMNS
from google_sheets import GoogleSheetsSink, open_client
from local_stack import SPREADSHEET_ID, service_account_info
from merge import MergeResult, merge_posts
from sink import ACCOUNTS_SHEET, DATA_SHEET
from threads_metrics import write_and_format

MB = 1_000_000
KIB = 1024
WRITE_ACKS = {"values_update": b"{}", "batch_update": b'{"replies": []}'}  # what gspread reads
UNREACHABLE_TOKEN_URI = "https://oauth2.invalid/token"  # the token is set by hand: never asked


class PhaseAdapter(BaseAdapter):
    """A requests transport into a Sheets simulator in this process, never the network.

    Opening the spreadsheet and reading the accounts tab go to the simulator (its real answers).
    Inside the phase the simulator does no work, so none of its time or memory is measured:
    values.get of the data sheet answers the prepared body, and every write is counted and
    acknowledged without being stored. Everything above the transport runs for real.
    """

    def __init__(self, world: sheets_simulator.SheetsWorld, data_body: bytes) -> None:
        super().__init__()
        self.world = world
        self.data_body = data_body
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.largest_body = 0
        self.keep_bodies = False  # keep the data sheet's write bodies (payload comparison)
        self.write_bodies: list[bytes] = []

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> bytes:
        """The body of the answer to one request; counts it by the simulator's kinds."""
        kind, params = sheets_simulator.route(method, unquote(urlsplit(url).path))
        self.requests[kind] += 1
        self.bytes_sent += len(body)
        self.largest_body = max(self.largest_body, len(body))
        if kind == "values_get" and DATA_SHEET in params.get("range", ""):
            return self.data_body
        if kind in WRITE_ACKS:
            if self.keep_bodies and kind == "values_update":
                self.write_bodies.append(body)
            return WRITE_ACKS[kind]
        return self.world.handle(method, url, headers, body).body

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        """Answer one request from memory."""
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body
        response = requests.Response()
        response._content = self.answer(
            request.method or "GET", request.url or "", dict(request.headers), body
        )
        response.status_code = 200
        response.headers["Content-Type"] = "application/json; charset=UTF-8"
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        """Nothing to close."""


def phase_world(rows: int) -> sheets_simulator.SheetsWorld:
    """A simulator with the accounts tab and a data tab of the sheet's grid size, but no cells."""
    world = sheets_simulator.SheetsWorld()
    world.create_spreadsheet(SPREADSHEET_ID, (ACCOUNTS_SHEET,))
    world.add_sheet(SPREADSHEET_ID, DATA_SHEET, rows=rows + 1, cols=SHEET_COLUMNS)
    world.set_values(SPREADSHEET_ID, ACCOUNTS_SHEET, [["account_name", "access_token"]])
    return world


def memory_sink(adapter: PhaseAdapter) -> GoogleSheetsSink:
    """The product's GoogleSheetsSink on the product's client, with the transport replaced."""
    client = open_client(service_account_info(UNREACHABLE_TOKEN_URI))
    session = client.http_client.session
    session.credentials.token = "bench-token"  # valid far into the future: no token request
    session.credentials.expiry = datetime(2100, 1, 1)
    session.mount("https://", adapter)
    return GoogleSheetsSink(client, SPREADSHEET_ID)


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    """Run step; (seconds, result)."""
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def proc_status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB, or None off Linux."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * KIB / MB
    return None


def reset_peak_rss() -> None:
    """Start the peak (VmHWM) afresh from the current RSS (Linux: clear_refs 5)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss_mb() -> float:
    """Peak resident memory of this process: VmHWM on Linux, else getrusage's ru_maxrss.

    ru_maxrss is not used on Linux: a child started by a big process inherits the parent's
    peak through fork and exec, so it would report the benchmark's own memory.
    """
    peak = proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / MB  # KiB on Linux


def direct_cell(value: Any) -> Any:
    """A cell as set_with_dataframe(string_escaping="full") sends it, without its overhead."""
    if isinstance(value, str):
        return "'" + value if value else ""
    if value is None or value != value:  # NaN is the only value unequal to itself
        return ""
    return value


def direct_payload(merged: MergeResult) -> list[list[Any]]:
    """The owned cells the merge says to write (header first when due), from df.values."""
    columns = [name for name in merged.frame.columns if name in OWNED]
    values = merged.frame[columns].to_numpy(dtype=object)
    rows = [
        [direct_cell(cell) for cell in row]
        for start, end in merged.write_ranges
        for row in values[start:end].tolist()
    ]
    return ([["'" + name for name in columns]] if merged.header_changed else []) + rows


def compare_alternatives(
    data_body: bytes, merged: MergeResult, sink: GoogleSheetsSink, adapter: PhaseAdapter
) -> dict[str, Any]:
    """The issue's comparison points on the same data, after the product's phase was measured."""
    from gspread_dataframe import get_as_dataframe

    def direct_read() -> pd.DataFrame:
        values = json.loads(data_body)["values"]
        return pd.DataFrame(values[1:], columns=values[0])

    worksheet = sink.client.open_by_key(SPREADSHEET_ID).worksheet(DATA_SHEET)
    gdf_read_s, _ = timed(lambda: get_as_dataframe(worksheet))
    direct_read_s, _ = timed(direct_read)
    direct_write_s, direct = timed(lambda: json.dumps({"values": direct_payload(merged)}).encode())
    # Check that the direct build is the payload the product sends, cell by cell.
    adapter.keep_bodies = True
    write_and_format(sink, merged, OWNED, {})
    sent = [cell for body in adapter.write_bodies for cell in json.loads(body)["values"]]
    return {
        "gdf_read_s": gdf_read_s,
        "direct_read_s": direct_read_s,
        "direct_write_s": direct_write_s,
        "direct_same_payload": sent == json.loads(direct)["values"],
    }


def measure_phase(folder: Path, rows: int, trace: bool, compare: bool) -> dict[str, Any]:
    """read -> merge -> write of the product, as threads_metrics.sync runs them."""
    data_body = (folder / "values.json").read_bytes()
    fresh = pd.DataFrame.from_records(json.loads((folder / "fresh.json").read_text()))
    fresh = fresh.astype(object)  # as Collector._fresh_frame builds it
    adapter = PhaseAdapter(phase_world(rows), data_body)
    sink = memory_sink(adapter)
    sink.read_accounts()  # opens the spreadsheet: outside the phase, as in a run
    gc.collect()
    rss_before_mb = proc_status_mb("VmRSS")
    reset_peak_rss()
    if trace:
        tracemalloc.start()
    read_s, sheet = timed(sink.read_posts)
    merge_s, merged = timed(lambda: merge_posts(sheet, fresh, OWNED))
    # The product's own write step, as sync calls it (a fresh state: nothing formatted yet).
    write_s, _ = timed(lambda: write_and_format(sink, merged, OWNED, {}))
    if trace:
        return {"traced_peak_mb": tracemalloc.get_traced_memory()[1] / MB}
    result = {
        "rows": rows,
        "values_get_bytes": len(data_body),
        "read_s": read_s,
        "merge_s": merge_s,
        "write_s": write_s,
        "rss_before_mb": rss_before_mb or peak_rss_mb(),
        "rss_peak_mb": peak_rss_mb(),
        "new_rows": merged.new_rows,
        "updated_rows": merged.updated_rows,
        "rows_written": sum(end - start for start, end in merged.write_ranges),
        "requests": {kind: count for kind, count in adapter.requests.items()},
        "bytes_sent": adapter.bytes_sent,
        "largest_body": adapter.largest_body,
    }
    if compare:
        result.update(compare_alternatives(data_body, merged, sink, adapter))
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure once and print the result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="holds values.json and fresh.json")
    parser.add_argument("rows", type=int, help="data rows in the sheet")
    parser.add_argument("--trace", action="store_true", help="tracemalloc instead of timing")
    parser.add_argument("--compare", action="store_true", help="also time the direct builds")
    args = parser.parse_args(argv)
    print(json.dumps(measure_phase(args.folder, args.rows, args.trace, args.compare)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
