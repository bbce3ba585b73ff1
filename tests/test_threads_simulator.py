"""Tests for threads_simulator: endpoints, paging, errors, faults, stats and both front ends."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
import responses

import threads_simulator as ts

BASE = "https://graph.threads.net"
ANNA, ANNA_TOKEN = "anna.writes", "demo-token-anna"
IVAN_TOKEN = "demo-token-ivan"
ALL_METRICS = ",".join(ts.METRICS)


@pytest.fixture()
def world() -> ts.ThreadsWorld:
    """A fresh demo world (real clock)."""
    return ts.make_demo_world()


@pytest.fixture()
def clock() -> ts.ManualClock:
    """A manual clock starting at a fixed moment."""
    return ts.ManualClock(datetime(2025, 6, 10, 12, 0, tzinfo=UTC))


def get(world: ts.ThreadsWorld, path: str, **params: object) -> ts.SimResponse:
    """GET ``path`` on the simulated graph.threads.net with query ``params``."""
    query = f"?{urlencode(params)}" if params else ""
    return world.handle("GET", f"{BASE}{path}{query}")


def list_all(world: ts.ThreadsWorld, token: str, **params: object) -> list[dict]:
    """Follow ``paging.next`` from the first page; return every item."""
    body = get(world, "/v1.0/me/threads", access_token=token, **params).json()
    items = list(body["data"])
    while "next" in body.get("paging", {}):
        body = world.handle("GET", body["paging"]["next"]).json()
        items += body["data"]
    return items


def error_of(answer: ts.SimResponse) -> dict:
    """The ``error`` object of an error answer."""
    return answer.json()["error"]


# ---- listing -------------------------------------------------------------------------------
def test_list_follows_next_links_to_every_post_once(world: ts.ThreadsWorld) -> None:
    items = list_all(world, ANNA_TOKEN, fields="id,text", limit=7)
    ids = [item["id"] for item in items]
    assert ids == [post.id for post in world.posts_of(ANNA)]
    assert len(ids) == len(set(ids)) >= 20


def test_next_link_carries_every_parameter_and_the_new_cursor(world: ts.ThreadsWorld) -> None:
    first = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, fields="id,timestamp", limit=5)
    body = first.json()
    parts = urlsplit(body["paging"]["next"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{BASE}/v1.0/me/threads"
    assert query == {
        "access_token": ANNA_TOKEN,
        "fields": "id,timestamp",
        "limit": "5",
        "after": body["paging"]["cursors"]["after"],
    }
    assert "previous" not in body["paging"]


def test_last_page_has_no_next_but_has_previous(world: ts.ThreadsWorld) -> None:
    total = len(world.posts_of(ANNA))
    body = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, limit=total - 1).json()
    last = world.handle("GET", body["paging"]["next"]).json()
    assert len(last["data"]) == 1
    assert "next" not in last["paging"]
    back = world.handle("GET", last["paging"]["previous"]).json()
    assert [i["id"] for i in back["data"]] == [i["id"] for i in body["data"]]


def test_list_is_newest_first_with_id_as_tiebreak(world: ts.ThreadsWorld) -> None:
    items = list_all(world, ANNA_TOKEN, fields="id,timestamp", limit=100)
    keys = [(item["timestamp"], int(item["id"])) for item in items]
    assert keys == sorted(keys, reverse=True)
    stamps = [item["timestamp"] for item in items]
    assert len(set(stamps)) < len(stamps), "the demo world should contain a timestamp tie"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", stamps[0])


def test_limit_defaults_to_25_and_is_clamped_to_100() -> None:
    big = ts.make_world(1, 150)
    default = get(big, "/v1.0/me/threads", access_token="bench-token-0000").json()
    clamped = get(big, "/v1.0/me/threads", access_token="bench-token-0000", limit=500).json()
    assert len(default["data"]) == 25
    assert len(clamped["data"]) == 100


def test_before_and_after_together_are_rejected_with_code_100(world: ts.ThreadsWorld) -> None:
    answer = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, before="x", after="y")
    assert answer.status == 400
    assert error_of(answer)["code"] == 100


def test_unknown_field_is_rejected_with_code_100(world: ts.ThreadsWorld) -> None:
    fields = "id,like_count,repost_count"
    answer = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, fields=fields)
    assert answer.status == 500
    assert error_of(answer)["message"] == "Tried accessing nonexisting field (like_count)"
    assert error_of(answer)["type"] == "THApiException"
    assert error_of(answer)["code"] == 100
    world.unknown_field_status = 400
    assert get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, fields=fields).status == 400


def test_only_requested_fields_with_values_are_returned(world: ts.ThreadsWorld) -> None:
    items = list_all(world, ANNA_TOKEN, fields="id,text,media_type,media_url", limit=100)
    by_type = {item["media_type"]: item for item in items}
    assert set(by_type["TEXT_POST"]) == {"id", "text", "media_type"}  # no media_url
    assert set(by_type["IMAGE"]) <= {"id", "text", "media_type", "media_url"}
    assert set(by_type["REPOST_FACADE"]) == {"id", "media_type"}  # no text, no media
    assert all(set(item) <= {"id", "text", "media_type", "media_url"} for item in items)


def test_fields_default_to_id(world: ts.ThreadsWorld) -> None:
    body = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, limit=3).json()
    assert [set(item) for item in body["data"]] == [{"id"}] * 3


def test_since_filters_older_posts(world: ts.ThreadsWorld) -> None:
    posts = world.posts_of(ANNA)
    pivot = posts[10]
    since = int(pivot.timestamp.timestamp())
    ids = [i["id"] for i in list_all(world, ANNA_TOKEN, since=since, limit=100)]
    expected = [p.id for p in posts if p.timestamp >= pivot.timestamp]
    assert ids == expected
    assert pivot.id in ids  # inclusive


def test_until_is_inclusive_and_accepts_a_date(world: ts.ThreadsWorld) -> None:
    posts = world.posts_of(ANNA)
    pivot = posts[5]
    ids = [i["id"] for i in list_all(world, ANNA_TOKEN, until=int(pivot.timestamp.timestamp()))]
    assert ids == [p.id for p in posts if p.timestamp <= pivot.timestamp]
    day = posts[0].timestamp.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    by_date = list_all(world, ANNA_TOKEN, since=day.isoformat(), limit=100)
    assert [i["id"] for i in by_date] == [p.id for p in posts if p.timestamp >= midnight]


def test_deleted_post_is_not_listed(world: ts.ThreadsWorld) -> None:
    victim = world.posts_of(ANNA)[3]
    world.delete_post(victim.id)
    ids = [i["id"] for i in list_all(world, ANNA_TOKEN, limit=100)]
    assert victim.id not in ids
    assert len(ids) == len(world.posts_of(ANNA, include_deleted=True)) - 1


def test_cursor_still_works_after_the_cursor_post_is_deleted(world: ts.ThreadsWorld) -> None:
    posts = world.posts_of(ANNA)
    body = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, limit=5).json()
    world.delete_post(posts[4].id)  # the post the "after" cursor points at
    rest = world.handle("GET", body["paging"]["next"]).json()
    assert [i["id"] for i in rest["data"]] == [p.id for p in posts[5:10]]


def test_new_post_is_listed_first(world: ts.ThreadsWorld) -> None:
    post = world.add_post(ANNA, "brand new")
    first = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, fields="id,text").json()
    assert first["data"][0] == {"id": post.id, "text": "brand new"}
    assert len(post.id) == 18


def test_empty_result_has_no_paging(world: ts.ThreadsWorld) -> None:
    body = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, since="2099-01-01").json()
    assert body == {"data": []}


# ---- tokens ----------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"access_token": "nope"}], ids=["missing", "unknown"])
def test_invalid_token_returns_code_190(world: ts.ThreadsWorld, params: dict) -> None:
    answer = get(world, "/v1.0/me/threads", **params)
    assert answer.status == 400
    error = error_of(answer)
    assert (error["code"], error["type"]) == (190, "OAuthException")
    assert error["message"] == "Invalid OAuth access token - Cannot parse access token"


def test_expired_token_returns_code_190(clock: ts.ManualClock) -> None:
    world = ts.make_demo_world(clock=clock)
    clock.advance(days=60)  # tokens are 7 days old at build time, so now 67 days
    error = error_of(get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN))
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert error["message"].startswith("Error validating access token: Session has expired on ")


def test_expire_token_and_revoke_token_affect_only_that_account(world: ts.ThreadsWorld) -> None:
    world.expire_token(ANNA)
    world.revoke_token("ivan_petrov")
    assert error_of(get(world, "/v1.0/me", access_token=ANNA_TOKEN))["error_subcode"] == 463
    assert error_of(get(world, "/v1.0/me", access_token=IVAN_TOKEN))["error_subcode"] == 460
    assert get(world, "/v1.0/me", access_token="demo-token-coffee").status == 200


def test_me_returns_id_and_username(world: ts.ThreadsWorld) -> None:
    body = get(world, "/v1.0/me", fields="id,username", access_token=ANNA_TOKEN).json()
    assert body == {"id": world.accounts[ANNA].user_id, "username": ANNA}


def test_refresh_returns_a_new_token_and_the_old_one_keeps_working(clock: ts.ManualClock) -> None:
    world = ts.make_demo_world(clock=clock)
    answer = get(
        world, "/refresh_access_token", grant_type="th_refresh_token", access_token=ANNA_TOKEN
    )
    body = answer.json()
    assert answer.status == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 5_184_000
    new = body["access_token"]
    assert new != ANNA_TOKEN
    assert get(world, "/v1.0/me", fields="username", access_token=new).json()["username"] == ANNA
    assert get(world, "/v1.0/me", access_token=ANNA_TOKEN).status == 200
    assert world.tokens[new].created_at == clock()
    assert world.tokens[new].expires_at == clock() + timedelta(days=60)
    assert world.accounts[ANNA].token == new


def test_refresh_refuses_token_younger_than_24h(clock: ts.ManualClock) -> None:
    world = ts.ThreadsWorld(clock=clock)
    world.add_account("fresh", token="t-fresh", token_created_at=clock() - timedelta(hours=23))
    answer = get(
        world, "/v1.0/refresh_access_token", grant_type="th_refresh_token", access_token="t-fresh"
    )
    assert answer.status == 400
    assert error_of(answer)["code"] == 10
    clock.advance(hours=2)
    again = get(
        world, "/refresh_access_token", grant_type="th_refresh_token", access_token="t-fresh"
    )
    assert again.status == 200


def test_refresh_of_expired_token_returns_code_190(world: ts.ThreadsWorld) -> None:
    world.expire_token(ANNA)
    answer = get(
        world, "/refresh_access_token", grant_type="th_refresh_token", access_token=ANNA_TOKEN
    )
    assert (answer.status, error_of(answer)["code"]) == (400, 190)


def test_bearer_header_is_accepted_only_when_enabled(world: ts.ThreadsWorld) -> None:
    headers = {"Authorization": f"Bearer {ANNA_TOKEN}"}
    assert world.handle("GET", f"{BASE}/v1.0/me", headers).status == 400
    world.accept_bearer_header = True
    assert world.handle("GET", f"{BASE}/v1.0/me", headers).status == 200


# ---- insights --------------------------------------------------------------------------------
def first_post(world: ts.ThreadsWorld, media_type: str = "TEXT_POST") -> ts.SimPost:
    """The newest post of anna of the given type."""
    return next(p for p in world.posts_of(ANNA) if p.media_type == media_type)


def test_insights_return_one_lifetime_item_per_metric(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    world.set_metrics(post.id, views=1000, likes=100, replies=7, reposts=3, quotes=2, shares=1)
    body = get(world, f"/v1.0/{post.id}/insights", metric=ALL_METRICS, access_token=ANNA_TOKEN)
    data = body.json()["data"]
    assert [(d["name"], d["values"]) for d in data] == [
        ("views", [{"value": 1000}]),
        ("likes", [{"value": 100}]),
        ("replies", [{"value": 7}]),
        ("reposts", [{"value": 3}]),
        ("quotes", [{"value": 2}]),
        ("shares", [{"value": 1}]),
    ]
    likes = data[1]
    assert likes["period"] == "lifetime" and likes["title"] == "Likes" and likes["description"]
    assert likes["id"] == f"{post.id}/insights/likes/lifetime"


def test_bumped_metrics_show_up_in_insights(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    world.set_metrics(post.id, likes=5)
    world.bump_metrics(post.id, likes=3)
    data = get(world, f"/v1.0/{post.id}/insights", metric="likes", access_token=ANNA_TOKEN)
    assert data.json()["data"][0]["values"] == [{"value": 8}]


def test_metric_missing_from_post_is_omitted(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    world.set_metrics(post.id, shares=None)
    data = get(world, f"/v1.0/{post.id}/insights", metric=ALL_METRICS, access_token=ANNA_TOKEN)
    assert [d["name"] for d in data.json()["data"]] == [
        "views",
        "likes",
        "replies",
        "reposts",
        "quotes",
    ]


def test_insights_for_repost_is_empty(world: ts.ThreadsWorld) -> None:
    post = first_post(world, "REPOST_FACADE")
    answer = get(world, f"/v1.0/{post.id}/insights", metric=ALL_METRICS, access_token=ANNA_TOKEN)
    assert (answer.status, answer.json()) == (200, {"data": []})


def test_deleted_post_insights_returns_subcode_33(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    world.delete_post(post.id)
    answer = get(world, f"/v1.0/{post.id}/insights", metric="likes", access_token=ANNA_TOKEN)
    error = error_of(answer)
    assert answer.status == 400
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert f"Object with ID '{post.id}' does not exist" in error["message"]


def test_insights_of_another_accounts_post_returns_subcode_33(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    answer = get(world, f"/v1.0/{post.id}/insights", metric="likes", access_token=IVAN_TOKEN)
    assert error_of(answer)["error_subcode"] == 33


def test_unknown_metric_returns_500_code_1(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    answer = get(world, f"/v1.0/{post.id}/insights", metric="likes,clicks", access_token=ANNA_TOKEN)
    assert answer.status == 500
    assert error_of(answer)["code"] == 1
    assert error_of(answer)["message"] == "An unknown error has occurred."


def test_unsupported_path_returns_code_100(world: ts.ThreadsWorld) -> None:
    answer = get(world, "/v1.0/me/followers", access_token=ANNA_TOKEN)
    assert answer.status == 400
    assert error_of(answer)["code"] == 100
    assert error_of(answer)["message"].startswith("Unsupported get request")


def test_errors_carry_fbtrace_id_and_never_the_token(world: ts.ThreadsWorld) -> None:
    world.expire_token("ivan_petrov")
    answers = [
        get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN, fields="bogus"),
        get(world, "/v1.0/me/threads", access_token=IVAN_TOKEN),
        get(world, "/v1.0/1/insights", metric="likes", access_token=ANNA_TOKEN),
        get(world, "/v1.0/nowhere", access_token=ANNA_TOKEN),
    ]
    traces = [error_of(a)["fbtrace_id"] for a in answers]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}", t) for t in traces)
    assert len(set(traces)) == len(traces)
    assert all(b"demo-token" not in a.body for a in answers)


# ---- faults and statistics ---------------------------------------------------------------------
def test_scripted_fault_is_served_then_normal(world: ts.ThreadsWorld) -> None:
    world.script(r"/me/threads$", [500, {"status": 403, "code": 613}])
    first = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN)
    second = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN)
    other = get(world, "/v1.0/me", access_token=ANNA_TOKEN)  # path does not match the script
    third = get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN)
    assert (first.status, error_of(first)["code"], error_of(first)["is_transient"]) == (
        500,
        2,
        True,
    )
    assert (second.status, error_of(second)["code"]) == (403, 613)
    assert other.status == 200 and third.status == 200
    assert world.stats.faults["scripted"] == 2


def test_scripted_429_carries_retry_after(world: ts.ThreadsWorld) -> None:
    world.faults = ts.FaultPlan(retry_after=7)
    world.script(r"/insights$", [429])
    post = first_post(world)
    answer = get(world, f"/v1.0/{post.id}/insights", metric="likes", access_token=ANNA_TOKEN)
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "7"
    assert error_of(answer)["code"] == 4


def test_throttle_faults_rotate_codes_and_spare_other_endpoints(world: ts.ThreadsWorld) -> None:
    world.faults = ts.FaultPlan(throttle_rate=1.0)
    errors = [get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN) for _ in ts.THROTTLES]
    assert [(a.status, error_of(a)["code"]) for a in errors] == [(s, c) for c, s, _ in ts.THROTTLES]
    assert all(error_of(a)["is_transient"] is True for a in errors)
    assert get(world, "/v1.0/me", access_token=ANNA_TOKEN).status == 200
    refresh = {"grant_type": "th_refresh_token", "access_token": ANNA_TOKEN}
    assert get(world, "/refresh_access_token", **refresh).status == 200
    world.faults.apply_to_refresh = True
    assert get(world, "/refresh_access_token", **refresh).status in (400, 403)
    assert world.stats.faults["throttle"] == len(ts.THROTTLES) + 1


def test_random_500_rate_is_roughly_honoured_and_seeded(world: ts.ThreadsWorld) -> None:
    def failures(seed: int) -> list[int]:
        world.faults = ts.FaultPlan(seed=seed, error_500_rate=0.3)
        answers = [get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN) for _ in range(300)]
        return [i for i, a in enumerate(answers) if a.status == 500]

    first = failures(5)
    assert 60 <= len(first) <= 120
    assert failures(5) == first  # same seed, same faults


def test_stats_count_requests_by_kind_and_account_without_tokens(world: ts.ThreadsWorld) -> None:
    post = first_post(world)
    get(world, "/v1.0/me/threads", access_token=ANNA_TOKEN)
    get(world, f"/v1.0/{post.id}/insights", metric="likes", access_token=ANNA_TOKEN)
    get(world, "/v1.0/me", access_token=IVAN_TOKEN)
    stats = world.stats
    assert stats.total == 3
    assert stats.by_kind == {"list": 1, "insights": 1, "me": 1}
    assert stats.by_account == {ANNA: 2, "ivan_petrov": 1}
    assert list(stats.log)[1] == ("insights", ANNA, f"/v1.0/{post.id}/insights")
    assert "token" not in repr(list(stats.log))
    world.reset_stats()
    assert world.stats.total == 0 and not world.stats.log


# ---- real HTTP server and responses adapter ----------------------------------------------------
def test_real_server_pages_with_next_links_pointing_back_to_it(world: ts.ThreadsWorld) -> None:
    with ts.serve(world) as server, requests.Session() as session:
        url = f"{server.base_url}/v1.0/me/threads"
        params = {"access_token": ANNA_TOKEN, "fields": "id,text", "limit": 10}
        body = session.get(url, params=params, timeout=5).json()
        ids = [item["id"] for item in body["data"]]
        while "next" in body.get("paging", {}):
            assert body["paging"]["next"].startswith(f"{server.base_url}/v1.0/me/threads?")
            body = session.get(body["paging"]["next"], timeout=5).json()
            ids += [item["id"] for item in body["data"]]
    assert ids == [p.id for p in world.posts_of(ANNA)]


def test_max_in_flight_counts_concurrent_requests(world: ts.ThreadsWorld) -> None:
    world.faults = ts.FaultPlan(latency_s=0.3)
    workers, statuses, barrier = 8, [], threading.Barrier(8)

    def call(url: str) -> None:
        barrier.wait()
        statuses.append(
            requests.get(url, params={"access_token": ANNA_TOKEN}, timeout=5).status_code
        )

    with ts.serve(world) as server:
        url = f"{server.base_url}/v1.0/me/threads"
        threads = [threading.Thread(target=call, args=(url,)) for _ in range(workers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    assert statuses == [200] * workers
    assert world.stats.max_in_flight == workers
    assert world.stats.in_flight == 0
    assert elapsed < workers * 0.3 / 2  # latency overlapped instead of queueing


def test_dropped_connection_raises_connection_error(world: ts.ThreadsWorld) -> None:
    world.script(r"/me/threads$", ["drop"])
    with ts.serve(world) as server:
        url = f"{server.base_url}/v1.0/me/threads"
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, params={"access_token": ANNA_TOKEN}, timeout=5)
        after = requests.get(url, params={"access_token": ANNA_TOKEN}, timeout=5)
    assert after.status_code == 200


def test_server_survives_clients_that_hang_up(world: ts.ThreadsWorld) -> None:
    world.faults = ts.FaultPlan(latency_s=0.1)
    with ts.serve(world) as server:
        host, port = urlsplit(server.base_url).hostname, urlsplit(server.base_url).port
        with socket.create_connection((host, port)) as raw:
            raw.sendall(
                b"GET /v1.0/me/threads?access_token=demo-token-anna HTTP/1.1\r\nHost: x\r\n\r\n"
            )
        with socket.create_connection((host, port)) as raw:
            raw.sendall(b"GET /v1.0/me/thr")  # half a request line, then gone
        time.sleep(0.2)
        answer = requests.get(
            f"{server.base_url}/v1.0/me", params={"access_token": ANNA_TOKEN}, timeout=5
        )
    assert answer.status_code == 200


def test_server_stops_fast_and_releases_its_port(world: ts.ThreadsWorld) -> None:
    server = ts.SimServer(world)
    port = urlsplit(server.base_url).port
    requests.get(f"{server.base_url}/v1.0/me", params={"access_token": ANNA_TOKEN}, timeout=5)
    started = time.monotonic()
    server.stop()
    server.stop()  # idempotent
    assert time.monotonic() - started < 1.0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_stop_cuts_open_keep_alive_connections(world: ts.ThreadsWorld) -> None:
    server = ts.SimServer(world)
    with requests.Session() as session:
        url = f"{server.base_url}/v1.0/me"
        assert session.get(url, params={"access_token": ANNA_TOKEN}, timeout=5).status_code == 200
        server.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            session.get(url, params={"access_token": ANNA_TOKEN}, timeout=5)


def test_responses_adapter_routes_to_same_world(world: ts.ThreadsWorld) -> None:
    with responses.RequestsMock() as rsps:
        ts.register_with_responses(rsps, world)
        post = world.add_post(ANNA, "via responses")
        answer = requests.get(
            f"{BASE}/v1.0/me/threads", params={"access_token": ANNA_TOKEN, "fields": "id,text"}
        )
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["data"][0] == {"id": post.id, "text": "via responses"}
        world.script(r"/me/threads$", ["drop"])
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{BASE}/v1.0/me/threads", params={"access_token": ANNA_TOKEN})
    assert world.stats.by_kind["list"] == 2


# ---- builders and command line -----------------------------------------------------------------
def test_demo_world_contains_hostile_texts_and_long_ids(world: ts.ThreadsWorld) -> None:
    posts = [p for account in world.accounts.values() for p in account.posts]
    texts = {p.text for p in posts}
    assert set(ts.HOSTILE_TEXTS) <= texts
    assert {len(p.id) for p in posts} == {17, 18}
    assert all(20 <= len(a.posts) <= 40 for a in world.accounts.values())
    assert [a.token for a in world.accounts.values()] == [
        "demo-token-anna",
        "demo-token-ivan",
        "demo-token-coffee",
    ]
    with_text = [t for t in texts if t]
    assert any(2000 <= len(t) <= 3000 for t in with_text)
    assert any("\n" in t for t in with_text)
    assert any(re.search("[а-яё]", t) for t in with_text)
    assert any(re.search("[\U0001f300-\U0001faff]", t) for t in with_text)
    reposts = [p for p in posts if p.media_type == "REPOST_FACADE"]
    assert reposts and all(p.text is None and p.media_url is None for p in reposts)
    assert any(p.media_type in ("IMAGE", "VIDEO") and p.text is None for p in posts)
    assert any("shares" not in p.metrics and p.media_type != "REPOST_FACADE" for p in posts)


def test_demo_world_is_deterministic_from_the_seed() -> None:
    def snapshot(seed: int) -> list[tuple]:
        world = ts.make_demo_world(seed)
        return [(p.id, p.text, p.timestamp, p.metrics) for p in world.posts_of(ANNA)]

    assert snapshot(7) == snapshot(7)
    assert snapshot(7) != snapshot(8)


def test_make_world_has_unique_18_digit_ids() -> None:
    world = ts.make_world(3, 200, seed=2)
    ids = [p.id for account in world.accounts.values() for p in account.posts]
    assert len(ids) == len(set(ids)) == 600
    assert all(len(i) == 18 for i in ids)
    lengths = {len(p.text or "") for a in world.accounts.values() for p in a.posts}
    assert min(lengths) < 80 and max(lengths) > 600


def test_command_line_prints_url_and_tokens_and_exits_on_ctrl_c() -> None:
    script = Path(ts.__file__)
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--demo"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        tokens = [proc.stdout.readline() for _ in range(3)]
        base = re.search(r"http://127\.0\.0\.1:\d+", banner).group(0)
        params = {"access_token": ANNA_TOKEN, "fields": "username"}
        answer = requests.get(f"{base}/v1.0/me", params=params, timeout=5)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    assert answer.json()["username"] == ANNA
    assert "demo-token-anna" in tokens[0]
