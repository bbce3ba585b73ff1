"""Threads Metrics: collect Threads posts and insights into a Google Sheet (the entry point)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

import accounts as accounts_sheet
from collect import Collector, utc_iso
from config import VARIABLES, Config, ConfigError, load_config
from http_session import build_session
from logs import context, setup_logging
from merge import MergeResult, merge_posts, owned_columns
from run_control import RunControl
from run_stats import Heartbeat, RunStats
from sink import Sink, SinkError
from state_store import DROPPED_FIELD_MEMORY_S, StateBusyError, StateStore
from threads_api import ThreadsClient
from token_health import Health, TokenKeeper

log = logging.getLogger("threads_metrics")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
COMMANDS = ("run", "cancel-pending", "demo")
REPORT_TIMEOUT_S = 30.0


@dataclass
class RunOutcome:
    """What one run did, for the exit code and the last log line."""

    failed_accounts: list[str]
    merge: MergeResult | None = None
    error: str | None = None
    health: Health | None = None


def open_sink(config: Config) -> Sink:
    """The Google Sheets sink, or the local workbook when THREADS_WORKBOOK is set."""
    if config.workbook_path:
        from workbook_sink import WorkbookSink

        return WorkbookSink(config.workbook_path)
    from google_sheets import GoogleSheetsSink, open_client

    info = config.service_account_info or {}
    try:
        client = open_client(info, config.sheets_base_url)
    except (ValueError, KeyError) as error:
        raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_JSON holds an unusable key: {error}") from None
    return GoogleSheetsSink(client, config.spreadsheet_id, info.get("client_email", ""))


def fields_to_request(config: Config, state: dict[str, Any], now: float) -> tuple[str, ...]:
    """The configured post fields minus those the API rejected within the last day."""
    dropped = state.get("dropped_fields", {})
    recent = {name for name, when in dropped.items() if now - when < DROPPED_FIELD_MEMORY_S}
    return tuple(name for name in config.post_fields if name not in recent)


def send_report(url: str, summary: dict[str, Any]) -> None:
    """POST the run's summary to URL_GAS_RAZVERTIVANIA; a failure is only a warning."""
    try:
        response = build_session(REPORT_TIMEOUT_S).post(url, json=summary)
        response.raise_for_status()
    except Exception as error:  # any failure here must not fail the run
        log.warning(
            "could not send the summary to URL_GAS_RAZVERTIVANIA: %s",
            type(error).__name__,
            extra=context(action="report"),
        )


def sync(
    config: Config,
    sink: Sink,
    store: StateStore,
    control: RunControl,
    stats: RunStats,
    args: argparse.Namespace,
) -> RunOutcome:
    """The steps of one run, in order; the lock on the state file is held by the caller."""
    state = store.load()
    accounts_grid = sink.read_accounts()
    accounts = accounts_sheet.select_accounts(
        accounts_sheet.parse_accounts(accounts_grid), args.accounts
    )
    session = build_session(config.request_timeout_s, pool_size=config.concurrency)
    client = ThreadsClient(
        config.threads_base_url,
        session,
        control,
        config.concurrency,
        fields_to_request(config, state, time.time()),
        stats=stats,
    )
    header = accounts_grid[0] if accounts_grid else []
    keeper = TokenKeeper(sink, header, client, config.token_refresh_days, state)
    if not args.dry_run:
        keeper.refresh_due(accounts)

    sheet_before = sink.read_posts()
    collector = Collector(client, state, sheet_before, config.metrics_ttl_s, stats, control)
    result = collector.run(accounts, config.concurrency)
    for name in client.dropped_fields:
        state["dropped_fields"][name] = time.time()
    failed = sorted(name for name, outcome in result.outcomes.items() if outcome.error)

    owned = owned_columns(client.post_fields)
    merged = merge_posts(sheet_before, result.frame, owned)
    if merged.changed and not args.dry_run:
        # Read again just before writing: analysts may have moved rows during a long fetch.
        merged = merge_posts(sink.read_posts(), result.frame, owned)
    warn_about_duplicates(merged)
    stats.add("posts_new", merged.new_rows)
    stats.add("posts_updated", merged.updated_rows)
    if args.dry_run:
        print_dry_run(merged, result.frame)
        return RunOutcome(failed, merged)
    write_and_format(sink, merged, owned, state)
    # Marks advance only now, after the rows they stand for are in the sheet.
    store.save(state)
    health = keeper.record(accounts, result.outcomes)
    return RunOutcome(failed, merged, health=health)


def write_and_format(
    sink: Sink, merged: MergeResult, owned: list[str], state: dict[str, Any]
) -> None:
    """Write what changed (write_posts formats after it); with nothing to write, format only
    when the sheet's size differs from what was last formatted, e.g. after a run was killed
    between writing its rows and formatting them."""
    size = [len(merged.frame) + 1, len(merged.frame.columns)]
    if merged.changed:
        sink.write_posts(merged.frame, owned, merged.write_ranges, merged.header_changed)
    elif state.get("formatted_size") != size:
        sink.format_posts(merged.frame)
    state["formatted_size"] = size


def warn_about_duplicates(merged: MergeResult) -> None:
    """Say once per run that the sheet holds some posts on more than one row."""
    if merged.duplicates:
        log.warning(
            "%d post keys stand on more than one row; all are updated, none is added again",
            len(merged.duplicates),
            extra=context(action="duplicates", examples=[list(k) for k in merged.duplicates[:5]]),
        )


def print_dry_run(merged: MergeResult, fresh: pd.DataFrame) -> None:
    """Human output of --dry-run: what a real run would change."""
    print(f"dry run: {merged.new_rows} new rows, {merged.updated_rows} rows updated")
    if not fresh.empty:
        for account, group in fresh.groupby("account_name"):
            print(f"  {account}: {len(group)} posts fetched or refreshed")
    print("nothing was written (sheet and state file untouched)")


def summary_line(stats: RunStats, control: RunControl, sink: Sink | None) -> dict[str, Any]:
    """The counters of the last log line (and of the report to URL_GAS_RAZVERTIVANIA)."""
    return {
        **stats.snapshot(),
        "sheets_requests": sink.requests_made if sink else 0,
        "duration_s": stats.duration_s(),
        "stopped_early": control.stopped_early,
        "finished_at": utc_iso(time.time()),
    }


def run_command(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """`run`: check the configuration, then sync under the state lock; returns the exit code."""
    try:
        config = load_config(env)
    except ConfigError as error:
        print(f"threads_metrics: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.log_level)
    control = RunControl(config.run_timeout_s)
    control.install_signal_handlers()
    stats = RunStats()
    sink: Sink | None = None
    outcome = RunOutcome([])
    try:
        sink = open_sink(config)
        with StateStore(config.state_file).locked() as store, Heartbeat(stats, config.heartbeat_s):
            outcome = sync(config, sink, store, control, stats, args)
    except ConfigError as error:
        print(f"threads_metrics: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (SinkError, StateBusyError, accounts_sheet.AccountsError) as error:
        outcome.error = str(error)
        log.error("%s", error, extra=context(action="run"))
    except Exception as error:  # a bug: log it as one JSON line (redacted), exit 1
        outcome.error = f"unexpected {type(error).__name__}"
        log.exception("unexpected error; please report it", extra=context(action="run"))
    summary = summary_line(stats, control, sink)
    summary["failed_accounts"] = outcome.failed_accounts
    if outcome.health:
        summary.update(outcome.health.as_context())
    log.info("run finished", extra=context(action="run_finished", **summary))
    if config.report_url and outcome.merge is not None and not args.dry_run:
        send_report(config.report_url, summary)
    if control.signal_number is not None:
        return 128 + control.signal_number
    return EXIT_FAILED if outcome.error or outcome.failed_accounts else EXIT_OK


def variables_help() -> str:
    """The epilog of --help: every variable with its default."""
    lines = ["environment variables (the app does not read .env):"]
    for name, (default, description) in VARIABLES.items():
        lines.append(f"  {name:<28} {description}; default: {default or '(empty)'}")
    lines.append("")
    lines.append("exit codes: 0 done (also after a graceful stop at the deadline), 1 an account or")
    lines.append(
        "the sheet failed (the rest was saved), 2 configuration error, 128+N after signal N"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line: run (default), cancel-pending, demo."""
    import cancel_pending

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="threads_metrics.py",
        description="Collect Threads posts and insights into the Google Sheet.",
        epilog=variables_help(),
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="{run,cancel-pending,demo}")
    run = commands.add_parser(
        "run", help="sync once (the default)", epilog=variables_help(), formatter_class=formatter
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="fetch and merge, print what would change; write neither the sheet nor the state",
    )
    run.add_argument(
        "--accounts",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        help="comma-separated account names to sync (default: all)",
    )
    cancel = commands.add_parser(
        "cancel-pending",
        help="cancel queued runs of the workflow",
        description=cancel_pending.DESCRIPTION,
        epilog=cancel_pending.HELP_EPILOG,
        formatter_class=formatter,
    )
    cancel_pending.add_arguments(cancel)
    demo = commands.add_parser("demo", help="try the tool offline on simulated accounts")
    demo.add_argument("--workbook", default="demo_metrics.xlsx", help="where to write the result")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command; `run` when none is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    if args.command == "cancel-pending":
        import cancel_pending

        return cancel_pending.run_from_args(args)
    if args.command == "demo":
        import demo

        return demo.run_demo(args.workbook)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
