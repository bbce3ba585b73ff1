"""Checks of the GitHub Actions workflow and .env.example: what the scheduled sync relies on
(schedule, concurrency, timeouts, the state cache, variables, permissions, pinning) and what
would otherwise break silently in production."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

import config

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
WORKFLOW = ROOT / ".github" / "workflows" / "threads-metrics.yml"
ENV_EXAMPLE = ROOT / ".env.example"

REQUIRED = "(required)"
# Variables of the app that the workflow leaves unset on purpose, and why.
NOT_SET_IN_ACTIONS = {
    "THREADS_WORKBOOK": "the local .xlsx sink would replace the Google Sheet",
    "GOOGLE_SHEETS_API_BASE_URL": "testing only",
    "THREADS_API_BASE_URL": "Meta's API, the default, is the only real endpoint",
}
# (name, lowest, highest) of the five cron fields, in order; GitHub runs schedules in UTC.
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)
CRON_PART = re.compile(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?")
PINNED_USES = re.compile(r"uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s*v\d+(?:\.\d+)*\s*$")
VARS_WITH_FALLBACK = re.compile(r"\$\{\{\s*vars\.(\w+)\s*\|\|\s*'([^']*)'\s*\}\}")


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse one workflow file."""
    with path.open(encoding="utf-8") as file:
        return yaml.safe_load(file)


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """Return the `on:` mapping (YAML 1.1, as PyYAML reads it, turns the key `on` into True)."""
    return workflow.get("on", workflow.get(True)) or {}


def all_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def step_index(steps: list[dict[str, Any]], *, uses: str = "", runs: str = "") -> int:
    """Index of the one step that uses an action (any ref) or whose script contains a command."""
    found = [
        index
        for index, step in enumerate(steps)
        if (uses and step.get("uses", "").split("@")[0] == uses)
        or (runs and runs in step.get("run", ""))
    ]
    assert len(found) == 1, f"expected one step for {uses or runs!r}, found {len(found)}"
    return found[0]


def expand_cron_field(field: str, lowest: int, highest: int) -> set[int]:
    """Values that one cron field (numbers, `*`, `a-b`, `,` and `/step`) matches."""
    values: set[int] = set()
    for part in field.split(","):
        match = CRON_PART.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a cron field of numbers")
        span, step = match.group(1), int(match.group(2) or 1)
        if span == "*":
            start, end = lowest, highest
        elif "-" in span:
            start, end = (int(bound) for bound in span.split("-"))
        else:
            start = int(span)
            end = highest if match.group(2) else start
        if not lowest <= start <= end <= highest or step < 1:
            raise ValueError(f"{part!r} is outside {lowest}-{highest}")
        values.update(range(start, end + 1, step))
    return values


def parse_cron(expression: str) -> list[set[int]]:
    """The sets of minutes, hours, days, months and weekdays that a cron expression matches."""
    fields = expression.split()
    if len(fields) != len(CRON_FIELDS):
        raise ValueError(f"{expression!r} has {len(fields)} fields; cron has 5")
    return [
        expand_cron_field(field, lowest, highest)
        for field, (_, lowest, highest) in zip(fields, CRON_FIELDS, strict=True)
    ]


def read_env_example() -> dict[str, str]:
    """NAME=value pairs of .env.example, comments and blank lines left out."""
    pairs: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_yaml(WORKFLOW)


@pytest.fixture(scope="module")
def job(workflow: dict[str, Any]) -> dict[str, Any]:
    return workflow["jobs"]["sync"]


@pytest.fixture(scope="module")
def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job["steps"]


@pytest.fixture(scope="module")
def sync_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return steps[step_index(steps, runs="python threads_metrics.py")]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_schedule_is_a_valid_cron(path: Path) -> None:
    for entry in triggers(load_yaml(path)).get("schedule", []):
        parse_cron(entry["cron"])


def test_schedule_runs_every_ten_minutes_off_the_hour(workflow: dict[str, Any]) -> None:
    on = triggers(workflow)
    assert "workflow_dispatch" in on
    [entry] = on["schedule"]
    minutes, *rest = parse_cron(entry["cron"])
    ordered = sorted(minutes)
    assert len(ordered) == 6
    assert all(later - earlier == 10 for earlier, later in pairwise(ordered))
    # GitHub delays and drops scheduled runs at the top of the hour.
    assert 0 not in minutes
    full = [set(range(lowest, highest + 1)) for _, lowest, highest in CRON_FIELDS[1:]]
    assert rest == full, "every hour of every day"


def test_runs_share_one_concurrency_group_without_cancelling_in_progress(
    workflow: dict[str, Any], job: dict[str, Any]
) -> None:
    assert workflow["concurrency"] == {"group": "threads-metrics", "cancel-in-progress": False}
    assert "concurrency" not in job


def test_job_timeout_exceeds_the_app_run_timeout(
    job: dict[str, Any], sync_step: dict[str, Any]
) -> None:
    run_timeout = float(sync_step["env"]["THREADS_RUN_TIMEOUT_MIN"])
    step_timeout = sync_step.get("timeout-minutes", job["timeout-minutes"])
    # The app ends itself first; the step is killed only if it hangs; the state is saved
    # before GitHub kills the job.
    assert run_timeout < step_timeout < job["timeout-minutes"] == 100


def test_state_file_is_restored_and_saved_at_the_app_state_path(
    steps: list[dict[str, Any]], sync_step: dict[str, Any]
) -> None:
    state_file = sync_step["env"]["THREADS_STATE_FILE"]
    restore_at = step_index(steps, uses="actions/cache/restore")
    save_at = step_index(steps, uses="actions/cache/save")
    restore, save = steps[restore_at]["with"], steps[save_at]
    assert restore_at < steps.index(sync_step) < save_at
    assert restore["path"] == save["with"]["path"] == state_file
    # Entries are immutable: every run saves under a key of its own, and restores the newest.
    assert "${{ github.run_id }}" in save["with"]["key"]
    assert restore["key"] == save["with"]["key"]
    assert restore["restore-keys"] == "threads-state-"
    assert save["with"]["key"].startswith(restore["restore-keys"])
    assert save["if"].startswith("always()"), "a failed sync still saves what it fetched"


def test_every_required_app_variable_is_provided(sync_step: dict[str, Any]) -> None:
    required = [name for name, (default, _) in config.VARIABLES.items() if default == REQUIRED]
    assert required, "config.VARIABLES marks no variable as required"
    for name in required:
        assert sync_step["env"].get(name) == f"${{{{ secrets.{name} }}}}", name


def test_every_app_variable_is_set_or_left_out_on_purpose(sync_step: dict[str, Any]) -> None:
    env = sync_step["env"]
    assert set(NOT_SET_IN_ACTIONS) <= set(config.VARIABLES)
    for name in config.VARIABLES:
        if name in NOT_SET_IN_ACTIONS:
            assert name not in env, f"{name} stays unset: {NOT_SET_IN_ACTIONS[name]}"
        else:
            assert name in env, f"set {name} in the sync step or add it to NOT_SET_IN_ACTIONS"


def test_tunable_fallbacks_are_the_app_defaults(sync_step: dict[str, Any]) -> None:
    tunables = {
        name: VARS_WITH_FALLBACK.fullmatch(str(value))
        for name, value in sync_step["env"].items()
        if "vars." in str(value)
    }
    assert tunables
    for name, match in tunables.items():
        assert match, f"{name}: write it as ${{{{ vars.{name} || 'default' }}}}"
        assert match.group(1) == name
        assert match.group(2) == config.VARIABLES[name][0], f"{name} drifted from config.py"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_sha(path: Path) -> None:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    uses = [line.removeprefix("- ") for line in lines if re.match(r"(- )?uses:", line)]
    assert len(uses) == sum("uses" in step for step in all_steps(load_yaml(path)))
    unpinned = [line for line in uses if not PINNED_USES.match(line)]
    assert not unpinned, "pin to a full commit SHA with '# vX.Y.Z' after it"


def test_permissions_are_least_privilege(
    workflow: dict[str, Any], job: dict[str, Any], steps: list[dict[str, Any]]
) -> None:
    assert workflow["permissions"] == {}
    assert job["permissions"] == {"contents": "read", "actions": "write"}
    # The token with `actions: write` reaches only cancel_pending.py.
    with_token = [
        step
        for step in steps
        if "secrets.GITHUB_TOKEN" in json.dumps(step) or "github.token" in json.dumps(step)
    ]
    assert len(with_token) == 1
    assert "python cancel_pending.py" in with_token[0]["run"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_step_interpolates_secrets_into_scripts(path: Path) -> None:
    steps = all_steps(load_yaml(path))
    secret_names = {
        name
        for step in steps
        for name, value in step.get("env", {}).items()
        if "secrets." in str(value)
    }
    for step in steps:
        script = step.get("run", "")
        # An expression in a script is pasted into it before the shell runs: use env instead.
        assert "${{" not in script, step.get("name")
        outside_env = {key: value for key, value in step.items() if key != "env"}
        assert "secrets." not in json.dumps(outside_env), step.get("name")
        # Scripts never touch a secret themselves (no echo, no file): only the program reads it.
        assert not [name for name in secret_names if name in script], step.get("name")


def test_cancel_pending_runs_alongside_the_sync_and_is_stopped_after_it(
    steps: list[dict[str, Any]], sync_step: dict[str, Any]
) -> None:
    start_at = step_index(steps, runs="python cancel_pending.py")
    stop_at = step_index(steps, runs="kill -TERM")
    assert start_at < steps.index(sync_step) < stop_at
    start = steps[start_at]["run"].splitlines()[0]
    assert start.rstrip().endswith("&"), "in the background"
    # It lists the runs of the workflow it is told about: this file, whatever its name.
    assert f"--workflow {WORKFLOW.name} " in start
    assert steps[stop_at]["if"] == "always()"


def test_dependencies_install_as_the_readme_says(steps: list[dict[str, Any]]) -> None:
    setup = steps[step_index(steps, uses="actions/setup-python")]["with"]
    assert setup["python-version"] == "3.11"
    assert (setup["cache"], setup["cache-dependency-path"]) == ("pip", "requirements.txt")
    install = steps[step_index(steps, runs="pip install")]
    assert install["run"].strip() == "python -m pip install -r requirements.txt"


def test_env_example_names_every_app_variable_with_its_default() -> None:
    example = read_env_example()
    for name, (default, _) in config.VARIABLES.items():
        assert name in example, f"{name} is missing from .env.example"
        assert example[name] == ("" if default == REQUIRED else default), name
