"""Alert thresholds, the outbox's bounds and channels, and where a webhook may go (SQLite store; the
webhook behind httpx.MockTransport, EventBridge behind a stub client with put_events)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests.clock_helpers import ManualClock
from tollgate.alerts.build import build_alerts
from tollgate.alerts.channels import EventBridgeChannel, WebhookChannel
from tollgate.alerts.outbox import Outbox
from tollgate.alerts.thresholds import BudgetUse, reached, reached_by_refusal
from tollgate.alerts.watch import AlertWatch
from tollgate.aws import LazyClient
from tollgate.budget_admin import alert_percents
from tollgate.config import Settings
from tollgate.errors import BadRequest
from tollgate.store.alert_base import DELIVERED, FAILED, PENDING
from tollgate.store.sqlite import SQLiteStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class Events:
    """A boto3 events client's put_events: fails while ``failing``."""

    def __init__(self) -> None:
        self.failing = False
        self.entries: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.failing:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "Throttling", "ErrorMessage": "slow down"}],
            }
        self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = SQLiteStore(str(tmp_path / "alerts.db"))
    await opened.init_schema()
    yield opened
    await opened.aclose()


def use(used: int, alert_at: tuple[int, ...] = (50, 80, 100), limit: int = 1000) -> BudgetUse:
    return BudgetUse("acme", "tokens:team", "all", limit, used, alert_at)


def test_alert_percents() -> None:
    assert alert_percents("100, 50,80,50") == (50, 80, 100)
    assert alert_percents("") == () and alert_percents([]) == ()  # '' / [] clear them
    assert alert_percents([100, 1]) == (1, 100) and alert_percents("150") == (150,)
    arabic_50 = "\u0665\u0660"  # isdigit() but not ASCII
    for bad in ("0", "1001", "5a", "-5", "50,,80", "2.5", arabic_50, [0], [50.5], [True], list(range(1, 12))):
        with pytest.raises(BadRequest, match=r"whole percent|at most 10"):
            alert_percents(bad)


def test_reached() -> None:
    assert reached(use(499)) == () and reached(use(500)) == (50,) and reached(use(1000)) == (50, 80, 100)
    assert reached(use(5, limit=0)) == ()  # no positive limit: nothing to measure against
    assert reached_by_refusal(use(10, alert_at=(50, 100, 150))) == (50, 100)  # a refusal is 100%


async def test_each_threshold_fires_once_and_a_refusal_counts_as_100(store: SQLiteStore) -> None:
    sent: list[dict[str, Any]] = []

    def hook(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(204)

    webhook = WebhookChannel(
        "https://hooks.example/x", secret=None, timeout_seconds=1, transport=httpx.MockTransport(hook)
    )
    outbox = Outbox(store, [webhook], max_attempts=3, retry_after_seconds=60, clock=ManualClock(T0))
    watch = AlertWatch(store, outbox, ManualClock(T0))
    await watch.observe(use(600))
    await watch.observe(use(700))
    await AlertWatch(store, outbox, ManualClock(T0)).observe(use(650))  # another process: the store dedups
    await watch.refused(use(900))  # 80 and 100 fire at the refusal
    await watch.refused(use(950))
    await outbox.drain()
    assert [(d["threshold"], d["used"]) for d in sorted(sent, key=lambda d: d["threshold"])] == [
        (50, 600),
        (80, 900),
        (100, 900),
    ]
    assert watch.refusal_seen("acme", "tokens:team", "all")
    assert [a.state for a in await store.list_alerts("acme")] == [DELIVERED] * 3


async def test_a_failing_channel_is_retried_alone_and_attempts_are_bounded(store: SQLiteStore) -> None:
    clock, events, calls = ManualClock(T0), Events(), []

    def hook(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    webhook = WebhookChannel(
        "https://hooks.example/x", secret=b"k", timeout_seconds=1, transport=httpx.MockTransport(hook)
    )
    eventbridge = EventBridgeChannel(LazyClient("events", region="us-east-1", client=events))
    outbox = Outbox(store, [webhook, eventbridge], max_attempts=3, retry_after_seconds=60, clock=clock)
    events.failing = True
    await AlertWatch(store, outbox, clock).observe(use(500, alert_at=(50,)))
    await outbox.drain()
    (alert,) = await store.list_alerts("acme")
    assert (alert.state, alert.attempts, alert.delivered) == (PENDING, 1, ("webhook",))
    assert "eventbridge: RuntimeError: Throttling: slow down" in alert.error
    body = calls[0].content
    assert (
        calls[0].headers["x-tollgate-signature"]
        == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    )

    for attempt in (2, 3):
        clock.now += timedelta(seconds=61)
        counts = await outbox.retry_pending()
        assert counts["alerts_" + (FAILED if attempt == 3 else PENDING)] == 1
    (alert,) = await store.list_alerts("acme")
    assert (alert.state, alert.attempts) == (FAILED, 3) and len(calls) == 1  # the webhook took it once
    clock.now += timedelta(seconds=61)
    events.failing = False
    assert await outbox.retry_pending() == {"alerts_delivered": 0, "alerts_pending": 0, "alerts_failed": 0}
    assert events.entries == []


async def test_an_event_has_the_source_detail_type_and_document(store: SQLiteStore) -> None:
    events = Events()
    outbox = Outbox(
        store,
        [EventBridgeChannel(LazyClient("events", region="us-east-1", client=events))],
        max_attempts=3,
        retry_after_seconds=60,
        clock=ManualClock(T0),
    )
    await AlertWatch(store, outbox, ManualClock(T0)).refused(use(10, alert_at=(100,)))
    await outbox.drain()
    (entry,) = events.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "tollgate",
        "tollgate.budget.threshold",
        "default",
    )
    assert json.loads(entry["Detail"]) == {
        "id": "acme/tokens:team#all#100",
        "tenant": "acme",
        "budget": "tokens:team",
        "period": "all",
        "threshold": 100,
        "limit": 1000,
        "used": 10,
        "unit": "tokens",
        "at": "2026-03-01T00:00:00.000000Z",
    }


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://127.0.0.1:9000/x", True),
        ("http://localhost/x", True),
        ("http://[::1]:8/x", True),
        ("http://hooks.example.com/x", False),
        ("http://10.0.0.5/x", False),
        ("ftp://hooks.example.com/x", False),
        ("hooks.example.com", False),
    ],
)
def test_where_a_webhook_may_go(url: str, allowed: bool) -> None:
    if allowed:
        assert Settings(alert_webhook_url=url).alert_webhook_url is not None
        return
    with pytest.raises(ValidationError):
        Settings(alert_webhook_url=url)
    if url.startswith("http://"):  # the explicit switch (tests, a private network) allows plain http
        assert Settings(alert_webhook_url=url, alert_webhook_allow_http=True).alert_webhook_url is not None


def test_no_channel_means_no_alerts(store: SQLiteStore) -> None:
    assert build_alerts(Settings(), store) is None
    assert build_alerts(Settings(alert_webhook_url="https://h.example/x"), store) is not None


def test_serve_refuses_a_plain_http_webhook_at_startup(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env |= {
        "TOLLGATE_SQLITE_PATH": str(tmp_path / "x.db"),
        "TOLLGATE_ALERT_WEBHOOK_URL": "http://hooks.example.com/token-abc123",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tollgate.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid setting TOLLGATE_ALERT_WEBHOOK_URL=***: must be https://" in result.stderr
    assert "token-abc123" not in result.stderr  # the URL may be a credential


async def test_a_webhook_error_never_repeats_the_url(store: SQLiteStore) -> None:
    url = "https://hooks.example/services/T000/B000/credential-in-the-path"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {url}", request=request)

    webhook = WebhookChannel(url, secret=None, timeout_seconds=1, transport=httpx.MockTransport(refuse))
    outbox = Outbox(store, [webhook], max_attempts=3, retry_after_seconds=60, clock=ManualClock(T0))
    await AlertWatch(store, outbox, ManualClock(T0)).observe(use(900, alert_at=(80,)))
    await outbox.drain()
    (alert,) = await store.list_alerts("acme")
    assert alert.error == "webhook: RuntimeError: ConnectError: cannot connect to <webhook url>"


def test_a_secret_refresh_rewires_the_alert_channels(tmp_path: Path) -> None:
    from tollgate.context import AppContext
    from tollgate.secrets import refresh_context

    ctx = AppContext.build(Settings(), SQLiteStore(str(tmp_path / "r.db")), allow_open=False)
    assert ctx.alerts is None and ctx.ledger.alerts is None and ctx.sweeper.outbox is None
    refresh_context(ctx, Settings(alert_webhook_url="https://hooks.example/a"))
    watch = ctx.alerts
    assert watch is not None and ctx.ledger.alerts is watch and ctx.sweeper.outbox is watch.outbox
    refresh_context(ctx, Settings(alert_webhook_url="https://hooks.example/b", alert_eventbridge=True))
    assert ctx.alerts is watch and [c.name for c in watch.outbox.channels] == ["webhook", "eventbridge"]
    refresh_context(ctx, Settings())
    assert ctx.alerts is None and ctx.ledger.alerts is None and ctx.sweeper.outbox is None
