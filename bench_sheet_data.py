"""Synthetic data sheets for the benchmarks: posts of `threads_simulator.make_world` as the tool
writes them, analysts' columns beside them, the fresh rows a run merges in, and a Sheets
simulator holding the sheet (whose values.get answer is what the sheet phase reads)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import gspread

import sheets_simulator
import threads_simulator
from config import DEFAULT_POST_FIELDS
from google_sheets import READ_PARAMS
from local_stack import SPREADSHEET_ID
from merge import owned_columns
from sink import ACCOUNTS_SHEET, DATA_SHEET
from threads_api import INSIGHT_METRICS

SEED = 1  # every simulated Threads world of the benchmarks
# The synthetic sheet comes from a world of its own seed and account names, so an account that a
# benchmark syncs finds none of its posts there: those rows are other accounts' history.
SHEET_SEED = 2
SHEET_ACCOUNTS = 50
SHEET_ACCOUNT_PREFIX = "history-"
OWNED = owned_columns(DEFAULT_POST_FIELDS)
ANALYST_COLUMNS = (
    "note",
    "category",
    "score",
    "engagement_rate",
    "reviewed",
    "campaign",
    "budget_rub",
    "clicks_formula",
)
SHEET_COLUMNS = len(OWNED) + len(ANALYST_COLUMNS)  # 25
UPDATED = "2025-06-01T12:00:00Z"  # updated_at of every row already in the sheet
FRESH_UPDATED = "2025-06-01T13:00:00Z"  # updated_at of what a run fetched
NEW_SHARE = 0.01  # new posts in a run, as a share of the sheet's rows
BEARER = {"Authorization": "Bearer bench"}  # any bearer token passes the simulator's check


@dataclass
class SyntheticSheet:
    """The data sheet's grid (header first, as written) and what a run may fetch for it."""

    grid: list[list[Any]]
    refreshed: list[dict[str, Any]]  # every post of the sheet, insights fetched again
    new: list[dict[str, Any]]  # posts published since the sheet was written

    def fresh(self, ttl_expired: bool) -> list[dict[str, Any]]:
        """The fresh records of a run: new posts, and every post's insights when the TTL expired."""
        return (self.refreshed if ttl_expired else []) + self.new


def owned_cells(post: threads_simulator.SimPost) -> dict[str, Any]:
    """A post's owned cells as a first run writes them; blank where the API has no value."""
    account = SHEET_ACCOUNT_PREFIX + post.account
    return {
        "account_name": account,
        "post_id": post.id,
        "permalink": post.permalink,
        "text": post.text or "",
        "media_type": post.media_type,
        "media_url": post.media_url or "",
        "timestamp": post.timestamp_text,
        "shortcode": post.shortcode,
        "username": account,
        "is_quote_post": post.is_quote_post,
        **post.metrics,  # reposts have none: their metric cells stay blank
        "updated_at": UPDATED,
    }


def analyst_cells(rng: random.Random, number: int) -> list[Any]:
    """Analysts' columns: notes, categories, numbers, formula results (as UNFORMATTED_VALUE)."""
    return [
        rng.choice(["", "", "", "проверить", "в отчёт", "NA", "=A1 текстом"]),
        rng.choice(["news", "promo", "lifestyle", ""]),
        rng.randint(0, 100),
        round(rng.random() * 0.1, 6),
        rng.random() < 0.5,
        "" if number % 3 else f"campaign-{number % 17}",
        rng.randint(0, 50_000),
        rng.randint(0, 900),
    ]


def posts_oldest_first(count: int) -> list[threads_simulator.SimPost]:
    """count posts of a SHEET_ACCOUNTS-account world, in the order runs appended them."""
    world = threads_simulator.make_world(
        SHEET_ACCOUNTS, math.ceil(count / SHEET_ACCOUNTS), seed=SHEET_SEED
    )
    posts = [post for name in world.accounts for post in world.posts_of(name)]
    return sorted(posts, key=lambda post: post.sort_key())[:count]


def refreshed_record(cells: dict[str, Any]) -> dict[str, Any] | None:
    """A post's row after its insights were fetched again: one more view; None for a repost."""
    if "views" not in cells:
        return None  # reposts get no insights call
    metrics = {name: cells[name] for name in INSIGHT_METRICS if name in cells}
    return {
        "account_name": cells["account_name"],
        "post_id": cells["post_id"],
        **metrics,
        "views": cells["views"] + 1,
        "updated_at": FRESH_UPDATED,
    }


def new_record(cells: dict[str, Any]) -> dict[str, Any]:
    """A new post as the collector returns it: fields the API omits are absent, not blank."""
    return {
        **{name: value for name, value in cells.items() if value != ""},
        "updated_at": FRESH_UPDATED,
    }


def synthetic_sheet(rows: int) -> SyntheticSheet:
    """rows posts with analysts' columns, and NEW_SHARE more posts that are not in it yet."""
    posts = posts_oldest_first(rows + max(1, round(rows * NEW_SHARE)))
    cells = [owned_cells(post) for post in posts]
    rng = random.Random(SHEET_SEED)
    grid = [[*OWNED, *ANALYST_COLUMNS]]
    grid += [
        [row.get(name, "") for name in OWNED] + analyst_cells(rng, number)
        for number, row in enumerate(cells[:rows])
    ]
    refreshed = [record for record in map(refreshed_record, cells[:rows]) if record]
    return SyntheticSheet(grid, refreshed, [new_record(row) for row in cells[rows:]])


def sheets_world(grid: list[list[Any]]) -> sheets_simulator.SheetsWorld:
    """A Sheets simulator (OAuth required, as Google) whose data sheet holds grid."""
    world = sheets_simulator.SheetsWorld(require_auth=True)
    world.create_spreadsheet(SPREADSHEET_ID, (ACCOUNTS_SHEET,))
    if len(grid) > 1:
        world.add_sheet(SPREADSHEET_ID, DATA_SHEET, rows=len(grid), cols=SHEET_COLUMNS)
        # RAW keeps every text as text, as the tool's '-prefixed USER_ENTERED writes do.
        world.set_values(SPREADSHEET_ID, DATA_SHEET, grid, input_option="RAW")
    return world


def values_get_body(world: sheets_simulator.SheetsWorld, title: str = DATA_SHEET) -> bytes:
    """The HTTP body of the values.get the sink sends for a whole tab, as the simulator answers."""
    sheet_range = quote(gspread.utils.absolute_range_name(title), safe="")
    url = (
        f"{sheets_simulator.SHEETS_BASE_URL}/v4/spreadsheets/{SPREADSHEET_ID}/values/"
        f"{sheet_range}?{urlencode(READ_PARAMS)}"
    )
    answer = world.handle("GET", url, BEARER)
    if answer.status != 200:
        raise RuntimeError(
            f"values.get of {title!r} answered {answer.status}: {answer.body[:200]!r}"
        )
    return answer.body
