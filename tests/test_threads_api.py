"""The Threads client against the simulator on a real 127.0.0.1 server: retries, throttling,
timeouts, token errors, the concurrency cap and the deadline."""

from __future__ import annotations

import time

import pytest
import responses

import threads_simulator as sim
from accounts import Account
from collect import Collector
from http_session import build_session
from run_control import RunControl, RunStopped
from run_stats import RunStats
from threads_api import ThreadsClient, ThreadsError

FIELDS = ("id", "text", "timestamp", "media_type")
FAST_THROTTLE = (0.01, 0.01, 0.01)


def make_client(
    base_url: str, *, concurrency: int = 4, timeout_s: float = 5.0, control=None, fields=FIELDS
) -> ThreadsClient:
    """A client with no sleeping between urllib3 retries, so the tests stay fast."""
    session = build_session(timeout_s, pool_size=concurrency, backoff_factor=0)
    control = control or RunControl(600)
    return ThreadsClient(base_url, session, control, concurrency, fields, FAST_THROTTLE)


@pytest.fixture
def world():
    world = sim.ThreadsWorld()
    world.add_account("alice", token="token-alice-0123456789")
    for number in range(5):
        world.add_post("alice", text=f"post {number}")
    return world


@pytest.fixture
def server(world):
    with sim.serve(world) as running:
        yield running


def list_all(client: ThreadsClient, token: str = "token-alice-0123456789") -> list[dict]:
    return [post for page in client.iter_post_pages(token, "alice") for post in page.posts]


def test_retry_on_500_succeeds_after_two_failures(world, server):
    world.script(r"/me/threads", [500, 500])
    client = make_client(server.base_url)
    assert len(list_all(client)) == 5
    assert world.stats.by_kind["list"] == 3
    assert client.calls == 1


def test_dropped_connection_is_retried(world, server):
    world.script(r"/me/threads", ["drop"])
    assert len(list_all(make_client(server.base_url))) == 5
    assert world.stats.by_kind["list"] == 2


def test_429_with_retry_after_is_retried(world, server):
    world.faults.retry_after = 0
    world.script(r"/me/threads", [429])
    assert len(list_all(make_client(server.base_url))) == 5
    assert world.stats.by_kind["list"] == 2


@pytest.mark.parametrize(
    ("code", "status"), [(4, 400), (17, 403), (32, 400), (613, 403), (80001, 400)]
)
def test_throttle_error_object_is_backed_off_and_retried(world, server, code, status):
    world.script(r"/me/threads", [{"status": status, "code": code, "message": "limit"}])
    client = make_client(server.base_url)
    assert len(list_all(client)) == 5
    assert client.calls == 2


def test_throttling_that_persists_gives_up_after_the_backoff_schedule(world, server):
    answer = {"status": 400, "code": 4, "message": "Application request limit reached"}
    world.script(r"/me/threads", [answer] * 10)
    client = make_client(server.base_url)
    with pytest.raises(ThreadsError) as raised:
        list_all(client)
    assert raised.value.is_throttled
    assert client.calls == 1 + len(FAST_THROTTLE)


def test_expired_token_fails_at_once_without_retry(world, server):
    world.expire_token("alice")
    client = make_client(server.base_url)
    with pytest.raises(ThreadsError) as raised:
        list_all(client)
    assert raised.value.is_token_error
    assert world.stats.by_kind["list"] == 1
    assert "token-alice" not in str(raised.value)


def test_slow_answer_times_out_with_a_redacted_error(world, server):
    world.faults.latency_s = 1.0
    client = make_client(server.base_url, timeout_s=0.1)
    started = time.monotonic()
    with pytest.raises(ThreadsError) as raised:
        list_all(client)
    assert "Timeout" in str(raised.value) or "timed out" in str(raised.value)
    assert "token-alice-0123456789" not in str(raised.value)
    assert "access_token=***" in str(raised.value)
    assert time.monotonic() - started < 5


def test_rejected_field_is_dropped_once_and_the_listing_goes_on(world, server, caplog):
    client = make_client(server.base_url, fields=(*FIELDS, "like_count"))
    posts = list_all(client)
    assert len(posts) == 5
    assert client.dropped_fields == ["like_count"]
    assert "like_count" not in client.post_fields
    assert sum("like_count" in record.getMessage() for record in caplog.records) == 1


def test_pagination_follows_next_links_without_repeating_parameters(world, server):
    for number in range(250):
        world.add_post("alice", text=f"more {number}")
    client = make_client(server.base_url)
    pages = list(client.iter_post_pages("token-alice-0123456789", "alice"))
    ids = [post["id"] for page in pages for post in page.posts]
    assert len(pages) == 3
    assert len(ids) == len(set(ids)) == 255


def crawl_everything(world, base_url, *, concurrency, control=None, ttl_s=3600.0):
    """Run the collector for every simulated account; returns (result, stats)."""
    control = control or RunControl(600)
    client = make_client(base_url, concurrency=concurrency, control=control)
    stats = RunStats()
    state = {"version": 1, "accounts": {}, "dropped_fields": {}}
    import pandas as pd

    collector = Collector(client, state, pd.DataFrame(), ttl_s, stats, control)
    accounts = [
        Account(name, world.accounts[name].token, row)
        for row, name in enumerate(world.accounts, start=2)
    ]
    return collector.run(accounts, concurrency), stats, state


def test_requests_in_flight_never_exceed_the_concurrency_cap():
    world = sim.make_world(accounts=3, posts_per_account=30)
    world.faults.latency_s = 0.02
    with sim.serve(world) as server:
        result, stats, _ = crawl_everything(world, server.base_url, concurrency=4)
    with_insights = [
        post
        for name in world.accounts
        for post in world.posts_of(name)
        if post.media_type != "REPOST_FACADE"
    ]
    assert stats.snapshot()["insights_fetched"] == len(with_insights) > 0
    assert world.stats.by_kind["insights"] == len(with_insights)
    assert world.stats.max_in_flight == 4


def test_deadline_stops_new_requests_and_keeps_what_was_fetched():
    world = sim.make_world(accounts=2, posts_per_account=200)
    world.faults.latency_s = 0.05
    control = RunControl(0.5)
    with sim.serve(world) as server:
        result, stats, state = crawl_everything(
            world, server.base_url, concurrency=2, control=control
        )
        served_at_stop = world.stats.total
        time.sleep(0.3)
        assert world.stats.total == served_at_stop
    assert control.stopped_early
    fetched = stats.snapshot()["insights_fetched"]
    assert 0 < fetched < 400
    assert len(result.frame) >= fetched
    # About 0.5 s at 2 × 20 requests a second: far fewer than the 404 a full run needs.
    assert served_at_stop < 60


def test_gate_raises_run_stopped_once_stop_is_requested(world, server):
    control = RunControl(600)
    client = make_client(server.base_url, control=control)
    control.request_stop()
    with pytest.raises(RunStopped):
        list_all(client)
    assert world.stats.total == 0


@responses.activate
def test_missing_metric_stays_absent_not_zero():
    world = sim.ThreadsWorld()
    world.add_account("bob", token="token-bob-0123456789")
    post = world.add_post("bob", text="hi")
    world.set_metrics(post.id, shares=None)
    sim.register_with_responses(responses.mock, world)
    client = make_client("https://graph.threads.net")
    metrics = client.fetch_insights("token-bob-0123456789", "bob", post.id)
    assert "shares" not in metrics
    assert set(metrics) == {"views", "likes", "replies", "reposts", "quotes"}
