"""Budget threshold alerts through a gateway on a real socket (SQLite), a real webhook receiver on
127.0.0.1 and EventBridge on moto: one call per threshold and period under concurrency, signed; a webhook
that is down is retried by the sweep; a webhook that hangs never holds up the request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clock_helpers import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.state_helpers import MESSAGES, Gateway, gateway_settings
from tollgate.store.alert_base import DELIVERED, PENDING, Alert
from tollgate.store.sqlite import SQLiteStore

SECRET = "whsec-for-tests"
BUDGET = "tokens:team"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(str(tmp_path / "state.db"))


def start(
    start_gateway: Callable[..., ServerThread],
    fake: FakeOpenAI,
    store: SQLiteStore,
    clock: ManualClock,
    alert_clients: dict[str, Any] | None = None,
    **overrides: Any,
) -> Gateway:
    settings = gateway_settings(fake, **overrides)
    server = start_gateway(
        settings, include_admin=True, store=store, clock=clock, alert_clients=alert_clients, allow_open=False
    )
    return Gateway(server, fake)


def team_key(gw: Gateway, capacity: int, alert_at: list[int]) -> str:
    response = gw.admin("PUT", "/budgets/acme/team", json={"tokens": capacity, "alert_at": alert_at})
    assert response.status_code == 200 and response.json()["alert_at"] == sorted(set(alert_at)), response.text
    return gw.new_key("acme", pool="team")


async def burst(gw: Gateway, key: str, count: int) -> list[httpx.Response]:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=gw.url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(client.post("/v1/chat/completions", json=body, headers=headers) for _ in range(count))
            )
        )


def alerts_of(store: SQLiteStore, tenant: str = "acme") -> list[Alert]:
    async def read() -> list[Alert]:
        probe = SQLiteStore(store.path)
        try:
            return await probe.list_alerts(tenant)
        finally:
            await probe.aclose()

    return asyncio.run(read())


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Wait for background deliveries to finish (a deadline against hanging, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_fifty_concurrent_requests_on_two_gateways_fire_each_threshold_once_signed(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    overrides = {"alert_webhook_url": receiver.url, "alert_webhook_secret": SECRET}
    gw = start(start_gateway, fake_openai, store, clock, **overrides)
    # a second gateway on the same file: its own AlertWatch, so only the store's conditional write dedups
    other = start(start_gateway, fake_openai, SQLiteStore(store.path), clock, **overrides)
    key = team_key(gw, 300, [80, 50, 100])  # 50 requests x 14 tokens settled: well past 100%

    async def both() -> list[httpx.Response]:
        halves = await asyncio.gather(burst(gw, key, 25), burst(other, key, 25))
        return halves[0] + halves[1]

    responses = asyncio.run(both())

    codes = sorted({r.status_code for r in responses})
    assert codes == [200, 429] and all(
        r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code == 429
    )
    wait_for(
        lambda: all(a.state == DELIVERED for a in alerts_of(store)) and len(receiver.calls) >= 3, "3 calls"
    )
    assert sorted(c.json["threshold"] for c in receiver.calls) == [50, 80, 100]  # exactly one per threshold
    for call in receiver.calls:
        expected = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call.headers["x-tollgate-signature"], expected)
        assert call.path == "/hooks/tollgate" and call.headers["content-type"] == "application/json"
        document = call.json
        assert set(document) == {
            "id",
            "tenant",
            "budget",
            "period",
            "threshold",
            "limit",
            "used",
            "unit",
            "at",
        }
        assert (document["tenant"], document["budget"], document["period"], document["limit"]) == (
            "acme",
            BUDGET,
            "all",
            300,
        )
        assert (
            document["unit"] == "tokens"
            and document["id"] == f"acme/{BUDGET}#all#{document['threshold']:03d}"
        )
        assert 0 < document["used"] <= 300  # settled + reserved (a refusal fires every threshold at once)
    stored = alerts_of(store)
    assert [(a.threshold, a.state, a.attempts, a.delivered) for a in stored] == [
        (t, DELIVERED, 1, ("webhook",)) for t in (50, 80, 100)
    ]
    # more refusals and a sweep later: nothing fires or goes out again for this budget and period
    asyncio.run(burst(gw, key, 5))
    clock.advance(3600)
    assert gw.admin("POST", "/sweep").json()["alerts_delivered"] == 0
    assert len(receiver.calls) == 3 and len(alerts_of(store)) == 3


def test_a_webhook_that_is_down_is_retried_by_the_sweep_and_delivered_once_up(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    receiver.mode = "fail"
    gw = start(start_gateway, fake_openai, store, clock, alert_webhook_url=receiver.url, alert_max_attempts=5)
    key = team_key(gw, 100, [10])
    assert gw.chat(key).status_code == 200  # the request is served while the webhook is down
    wait_for(lambda: [a.attempts for a in alerts_of(store) if a.error] == [1], "the failed first attempt")
    (alert,) = alerts_of(store)
    assert alert.state == PENDING and "HTTP 503" in alert.error and receiver.refused == 1

    assert gw.admin("POST", "/sweep").json()["alerts_pending"] == 1  # too soon: its claim is fresh
    clock.advance(61)  # past TOLLGATE_ALERT_RETRY_AFTER_SECONDS (60)
    assert gw.admin("POST", "/sweep").json()["alerts_pending"] == 1  # still down: attempt 2 failed
    assert receiver.refused == 2 and receiver.calls == []
    receiver.mode = "ok"
    clock.advance(61)
    swept = gw.admin("POST", "/sweep").json()
    assert swept["alerts_delivered"] == 1 and swept["alerts_pending"] == 0
    (alert,) = alerts_of(store)
    assert (alert.state, alert.attempts, alert.error) == (DELIVERED, 3, "")
    assert [c.json["threshold"] for c in receiver.calls] == [10]
    assert "x-tollgate-signature" not in receiver.calls[0].headers  # no secret set: unsigned
    clock.advance(61)
    assert gw.admin("POST", "/sweep").json()["alerts_delivered"] == 0 and len(receiver.calls) == 1


def test_a_hanging_webhook_never_holds_up_the_request(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    receiver.mode = "hang"
    overrides = {"alert_webhook_url": receiver.url, "alert_webhook_timeout_seconds": 0.5}
    gw = start(start_gateway, fake_openai, store, clock, **overrides)
    key = team_key(gw, 100, [10, 100])
    assert gw.chat(key).status_code == 200
    assert gw.chat(key, {"max_tokens": 1000}).status_code == 429  # refused: 100% fires too
    wait_for(lambda: len([a for a in alerts_of(store) if a.error]) == 2, "both attempts to time out")
    alerts = alerts_of(store)
    assert [(a.threshold, a.state, a.attempts) for a in alerts] == [(10, PENDING, 1), (100, PENDING, 1)]
    assert all("Timeout" in a.error for a in alerts)


def test_eventbridge_on_moto_receives_the_event(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    store: SQLiteStore,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": ["tollgate"], "detail-type": ["tollgate.budget.threshold"]}
        events.put_rule(Name="tollgate-alerts", EventPattern=json.dumps(pattern), EventBusName="default")
        events.put_targets(Rule="tollgate-alerts", Targets=[{"Id": "q", "Arn": arn}])

        clients = {"events_client": events}
        gw = start(start_gateway, fake_openai, store, clock, clients, alert_eventbridge=True)
        key = team_key(gw, 100, [10])
        assert gw.chat(key).status_code == 200
        wait_for(lambda: [a.state for a in alerts_of(store)] == [DELIVERED], "the event")
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    (message,) = messages
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("tollgate", "tollgate.budget.threshold")
    detail = event["detail"]
    assert (detail["tenant"], detail["budget"], detail["threshold"], detail["limit"]) == (
        "acme",
        BUDGET,
        10,
        100,
    )
    assert alerts_of(store)[0].delivered == ("eventbridge",)


def test_bad_alert_at_is_a_400_and_writes_nothing(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    gw = start(start_gateway, fake_openai, store, clock)
    assert gw.set_budget("acme", "team", 500)["alert_at"] == []
    for bad in ([0], [1001], ["50"], [50.5], "50,80", [True], list(range(1, 12))):
        response = gw.admin("PUT", "/budgets/acme/team", json={"tokens": 9, "alert_at": bad})
        assert response.status_code == 400, (bad, response.text)
        assert "alert_at" in response.json()["error"]["message"]
    (pool,) = gw.admin("GET", "/budgets?tenant=acme").json()["budgets"]
    assert (pool["kind"], pool["capacity"], pool["alert_at"]) == ("tokens", 500, [])
    response = gw.admin("PUT", "/budgets/acme/team", json={"tokens": 500, "alert_at": [100, 50, 50]})
    assert response.json()["alert_at"] == [50, 100]


def test_the_timed_sweep_of_serve_delivers_once_the_webhook_is_up(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    receiver.mode = "fail"
    overrides = {"alert_webhook_url": receiver.url, "sweep_interval_seconds": 0.05}
    settings = gateway_settings(fake_openai, **overrides)
    server = start_gateway(
        settings, include_admin=True, store=store, clock=clock, run_sweeper=True, allow_open=False
    )
    gw = Gateway(server, fake_openai)
    key = team_key(gw, 100, [10])
    assert gw.chat(key).status_code == 200
    wait_for(lambda: receiver.refused >= 1, "the failed first attempt")
    receiver.mode = "ok"
    clock.advance(61)  # the claim is stale now: the next timed sweep retries
    wait_for(lambda: [a.state for a in alerts_of(store)] == [DELIVERED], "the timed sweep's delivery")
    assert [c.json["threshold"] for c in receiver.calls] == [10] and alerts_of(store)[0].attempts == 2


def test_a_hoosh_token_reservation_fires_too(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    gw = start(start_gateway, fake_openai, store, clock, alert_webhook_url=receiver.url)
    key = team_key(gw, 100, [50, 100])
    headers = {"authorization": f"Bearer {key}"}
    reserved = httpx.post(f"{gw.url}/v1/tokens/reserve", json={"tokens": 60}, headers=headers, timeout=20)
    assert reserved.status_code == 200, reserved.text
    refused = httpx.post(f"{gw.url}/v1/tokens/reserve", json={"tokens": 60}, headers=headers, timeout=20)
    assert refused.status_code == 429
    wait_for(lambda: len(receiver.calls) == 2, "two calls")
    assert sorted((c.json["threshold"], c.json["used"]) for c in receiver.calls) == [(50, 60), (100, 60)]


def next_month(now: datetime) -> datetime:
    return (now.replace(day=1, hour=12) + timedelta(days=32)).replace(day=1)


def until_refused(gw: Gateway, key: str) -> int:
    """Chat until the budget refuses (bounded): how many were served."""
    for served in range(200):
        response = gw.chat(key)
        if response.status_code == 429:
            assert response.json()["error"]["budget"]["kind"] == "usd", response.text
            return served
        assert response.status_code == 200, response.text
    raise AssertionError("the USD budget never refused")


def test_a_usd_pool_budget_fires_each_threshold_once_per_period_under_concurrency(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    overrides = {"alert_webhook_url": receiver.url, "alert_webhook_secret": SECRET}
    gw = start(start_gateway, fake_openai, store, clock, **overrides)
    other = start(start_gateway, fake_openai, SQLiteStore(store.path), clock, **overrides)
    budget = {"usd": 0.0005, "period": "monthly", "alert_at": [100, 50]}  # 500 micro-USD a month
    response = gw.admin("PUT", "/budgets/acme/team", json=budget)
    assert response.status_code == 200 and response.json()["alert_at"] == [50, 100], response.text
    key = gw.new_key("acme", pool="team")
    months = [clock.now.strftime("%Y-%m")]

    async def both() -> list[httpx.Response]:  # each may cost up to ~50 micro-USD: 50 cross 50% at once
        halves = await asyncio.gather(burst(gw, key, 25), burst(other, key, 25))
        return halves[0] + halves[1]

    for month in range(2):
        responses = asyncio.run(both())
        assert {r.status_code for r in responses} <= {200, 429} and 200 in {r.status_code for r in responses}
        until_refused(gw, key)
        until_refused(other, key)  # more refusals in both processes: nothing fires again
        expected = 2 * (month + 1)
        wait_for(lambda: len(receiver.calls) >= expected, "this period's calls")  # noqa: B023
        wait_for(lambda: all(a.state == DELIVERED for a in alerts_of(store)), "every delivery recorded")
        if month == 0:
            clock.now = next_month(clock.now)  # a new period: its counter starts clean and alerts anew
            months.append(clock.now.strftime("%Y-%m"))
    fired = sorted((c.json["period"], c.json["threshold"]) for c in receiver.calls)
    assert fired == [(months[0], 50), (months[0], 100), (months[1], 50), (months[1], 100)]
    for call in receiver.calls:
        expected = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(call.headers["x-tollgate-signature"], expected)
        document = call.json
        assert (document["budget"], document["limit"], document["unit"]) == ("pool:team", 500, "micro_usd")
        assert document["id"] == f"acme/pool:team#{document['period']}#{document['threshold']:03d}"
        if document["threshold"] == 50:  # reached by a reserve: settled + reserved, this hold included
            assert 250 <= document["used"] <= 500
    assert len(alerts_of(store)) == 4


def test_a_keys_usd_budget_alerts_and_its_first_refusal_counts_as_100(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    receiver: WebhookReceiver,
    store: SQLiteStore,
    clock: ManualClock,
) -> None:
    gw = start(start_gateway, fake_openai, store, clock, alert_webhook_url=receiver.url)
    gw.set_budget("acme", "team", None)
    created = gw.admin(
        "POST",
        "/keys",
        json={"tenant": "acme", "pool": "team", "budget_usd": 0.0002, "budget_period": "daily"}
        | {"budget_alert_at": [80, 10]},
    )
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    day = clock.now.strftime("%Y-%m-%d")
    # the first request's hold (up to ~50 micro-USD) passes 10% of 200 and is served: fired by the reserve
    assert gw.chat(key).status_code == 200
    wait_for(lambda: len(receiver.calls) == 1, "the 10% call")
    first = receiver.calls[0].json
    assert (first["budget"], first["period"], first["threshold"]) == (f"key:{key_id}", day, 10)
    assert (first["limit"], first["unit"]) == (200, "micro_usd") and 20 <= first["used"] < 200
    assert until_refused(gw, key) > 0
    wait_for(lambda: len(receiver.calls) == 2, "the 80% call")
    assert [(c.json["budget"], c.json["threshold"]) for c in receiver.calls] == [
        (f"key:{key_id}", 10),
        (f"key:{key_id}", 80),
    ]
    assert receiver.calls[1].json["used"] >= 160

    # a key whose budget cannot hold even one request: its first refusal fires every threshold, used as it was
    tiny = gw.admin("POST", "/keys", json={"tenant": "acme", "pool": "team", "budget_usd": 0.00001})
    tiny_key, tiny_id = tiny.json()["key"], tiny.json()["key_id"]
    put = gw.admin("PUT", f"/keys/{tiny_id}/budget", json={"alert_at": [50, 100, 150]})
    assert put.status_code == 200, put.text
    assert gw.chat(tiny_key).status_code == 429
    assert gw.chat(tiny_key).status_code == 429
    wait_for(lambda: len(receiver.calls) == 4, "the refusal's two calls")
    refused = sorted((c.json["threshold"], c.json["used"], c.json["period"]) for c in receiver.calls[2:])
    assert refused == [(50, 0, "all"), (100, 0, "all")]  # period none; 150% can never be reached
    assert {c.json["budget"] for c in receiver.calls[2:]} == {f"key:{tiny_id}"}
    assert len(alerts_of(store)) == 4
