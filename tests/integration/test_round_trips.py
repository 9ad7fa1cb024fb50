"""Store round trips per chat request at steady state (issue "Cost per request").

Target (issue 11, "no reads on the steady-state hot path"): without a session, no read at all (the key
lookup cached) and 5 writes: reserve, settle (carrying its reservation's tokens: no read first), the audit
entry (the cost record) and its segment head, and the entry's cost rollup (one atomic add). A session adds
one read (its history) and one write. On DynamoDB the reserve and the settle go to the writer's own lease
shard of the pool (``store/dynamodb_leases.py``), not to the pool item: the pool item is written once per
lease (the warm-up takes the first).

- DynamoDB (dynalite) through the real gateway on a socket: every DynamoDB API call the store's client
  makes is recorded with botocore's ``before-parameter-build`` event (once per API call; retries of one call
  are not counted twice).
- SQLite: the store is wrapped in a proxy that records each ``Store`` method call (each is one
  transaction, i.e. one round trip to the file).

Steady state: a warm-up request per shape fills the key cache, creates the pool and the session, and
starts the tenant's audit chain; then each shape is measured on its own. ``pytest -s`` prints the counts.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract.backend_dynamodb import REGION, backend
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.store import dynamodb_items as items
from tollgate.store.base import Store
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.sqlite import SQLiteStore

TARGET_READS, TARGET_WRITES = 0, 5  # without a session; a session adds one of each


def target_writes(store: str) -> int:
    """SQLite writes the audit entry and its head in one call (one transaction): one write fewer."""
    return TARGET_WRITES - 1 if store.startswith("sqlite") else TARGET_WRITES


DYNAMODB_READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
STORE_READS = frozenset(
    {
        "key_by_hash",
        "any_keys",
        "list_keys",
        "get_pool",
        "list_pools",
        "get_alert",
        "list_alerts",
        "pending_alerts",
        "load_session",
        "get_response",
        "container_owner",
        "audit_head",
        "audit_heads",
        "scan_audit",
        "recent_audit",
        "get_audit_entry",
        "list_audit",
        "audit_tenants",
        "list_costs",
        "list_rollups",
        "get_budget_rules",
        "list_budget_rules",
        "get_usd_counter",
        "tenant_limits",
        "list_limits",
        "read_bucket",
    }
)
STORE_WRITES = frozenset(
    {
        "create_key",
        "revoke_key",
        "set_capacity",
        "create_pool",
        "record_alert",
        "claim_alert",
        "finish_alert",
        "reserve",
        "settle",
        "settle_anonymous",
        "save_session",
        "delete_session",
        "sweep_sessions",
        "put_response",
        "delete_response",
        "sweep_responses",
        "claim_container",
        "sweep_containers",
        "sweep_reservations",
        "put_budget_rule",
        "reserve_usd",
        "settle_usd",
        "sweep_usd_reservations",
        "put_audit_entry",
        "advance_audit_head",
        "append_audit_link",
        "add_rollup",
        "init_schema",
        "set_limit",
        "clear_limit",
        "count_in_bucket",
        "add_to_bucket",
        "rotate_key",
    }
)
NOT_ROUND_TRIPS = frozenset({"aclose"})
LATE_CALLS_WAIT_S = 0.2  # accounting must be done before the last byte (a Lambda sandbox freezes then)


@dataclass
class Recorder:
    """Operation names seen while recording is on (thread-safe: the stores call from worker threads)."""

    classify: Callable[[str], str]
    seen: list[str] = field(default_factory=list)
    on: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str) -> None:
        with self._lock:
            if self.on:
                self.seen.append(name)

    def measure(self, action: Callable[[], Any]) -> RoundTrips:
        """The calls made until ``action`` (one request) returned; fails on any call after its last byte."""
        with self._lock:
            self.seen, self.on = [], True
        try:
            action()
            with self._lock:
                during = list(self.seen)
            time.sleep(LATE_CALLS_WAIT_S)
        finally:
            with self._lock:
                self.on = False
        late = self.seen[len(during) :]
        assert not late, f"store calls after the response's last byte: {late}"
        return RoundTrips.of(during, self.classify)


@dataclass(frozen=True)
class RoundTrips:
    reads: int
    writes: int
    operations: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, names: list[str], classify: Callable[[str], str]) -> RoundTrips:
        kinds = Counter(classify(name) for name in names)
        return cls(kinds["read"], kinds["write"], tuple(sorted(Counter(names).items())))

    def __str__(self) -> str:
        ops = ", ".join(f"{name} x{count}" for name, count in self.operations)
        return f"{self.reads} reads + {self.writes} writes ({ops})"


def dynamodb_call(params: dict[str, Any]) -> str:
    """What a call touches, for the printout: the item's sort key without its variable part."""
    key = params.get("Key") or params.get("Item") or {}
    if key.get(items.PK, {}).get("S", "").startswith("ROLLUP#"):
        return "ROLLUP"
    sort_key = key.get(items.SK, {}).get("S", "")
    return sort_key.split("#", 1)[0] or "?"


def dynamodb_kind(name: str) -> str:
    operation = name.split("(", 1)[0]
    if operation in DYNAMODB_READS:
        return "read"
    if operation in DYNAMODB_WRITES:
        return "write"
    raise AssertionError(f"unclassified DynamoDB operation {operation}")


def store_kind(method: str) -> str:
    if method in STORE_READS:
        return "read"
    if method in STORE_WRITES:
        return "write"
    raise AssertionError(f"unclassified Store method {method}")


class CountingStore:
    """Forwards every ``Store`` method and records its name (one call = one transaction)."""

    def __init__(self, inner: Store, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr) or name in NOT_ROUND_TRIPS:
            return attr

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self._recorder.record(name)
            return await attr(*args, **kwargs)

        return counted


# ---------------------------------------------------------------------------------------- gateways


def gateway_settings(upstream: FakeOpenAI, **overrides: Any) -> Settings:
    return Settings(
        default_provider="openai",
        openai_api_key="sk-upstream-secret",
        openai_base_url=f"{upstream.url}/v1",  # type: ignore[attr-defined]
        admin_key=ADMIN_KEY,
        audit_key=AUDIT_KEY,
        key_cache_seconds=300,  # steady state: the key lookup is cached
        default_max_tokens=50,
        **overrides,
    )


@pytest.fixture
def dynamodb_gateway(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[tuple[Gateway, Recorder]]:
    recorder = Recorder(dynamodb_kind)
    with backend(tmp_path, "dynalite"):
        table = f"tollgate-rt-{uuid.uuid4().hex[:12]}"
        store = DynamoDBStore(table, region=REGION)
        asyncio.run(store.init_schema())
        client = store.client()
        client.meta.events.register(
            "before-parameter-build.dynamodb",
            lambda model, params, **_: recorder.record(f"{model.name}({dynamodb_call(params)})"),
        )
        settings = gateway_settings(fake_openai, store="dynamodb", table=table)
        app = create_app(settings, store=store, include_admin=True)
        with ServerThread(app, lifespan="on") as server:
            yield Gateway(server, fake_openai), recorder
            client.delete_table(TableName=table)


@pytest.fixture
def sqlite_gateway(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> tuple[Gateway, Recorder]:
    recorder = Recorder(store_kind)
    store = CountingStore(SQLiteStore(str(tmp_path / "round-trips.db")), recorder)
    server = start_gateway(gateway_settings(fake_openai), store=store, include_admin=True, allow_open=False)
    return Gateway(server, fake_openai), recorder


# ------------------------------------------------------------------------------------------ driving

SHAPES: dict[str, dict[str, Any]] = {
    "non-streamed": {},
    "streamed": {"stream": True, "stream_options": {"include_usage": True}},
    "non-streamed + session": {"session_id": "rt-session-a"},
    "streamed + session": {
        "stream": True,
        "stream_options": {"include_usage": True},
        "session_id": "rt-session-b",
    },
}


def chat_ok(gw: Gateway, key: str, body: dict[str, Any]) -> None:
    response = gw.chat(key, body)
    assert response.status_code == 200, response.text
    if body.get("stream"):
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]


def measure_all(gw: Gateway, recorder: Recorder, alert_at: list[int] | None = None) -> dict[str, RoundTrips]:
    key = gw.new_key("round-trips")
    budget: dict[str, Any] = {"tokens": 1_000_000}  # a real capacity: reserve is conditional
    if alert_at is not None:
        budget["alert_at"] = alert_at
    assert gw.admin("PUT", "/budgets/round-trips/default", json=budget).status_code == 200
    for body in SHAPES.values():  # warm-up: key cache, pool, sessions, the chain's head
        chat_ok(gw, key, body)
    return {
        name: recorder.measure(functools.partial(chat_ok, gw, key, body)) for name, body in SHAPES.items()
    }


def check_targets(store: str, counts: dict[str, RoundTrips]) -> None:
    for name, trips in counts.items():
        print(f"\n[{store}] {name}: {trips}")
    for name, trips in counts.items():
        extra = 1 if "session" in name else 0
        assert trips.reads == TARGET_READS + extra, f"{store} {name}: {trips}"
        assert trips.writes == target_writes(store) + extra, f"{store} {name}: {trips}"


def test_round_trips_per_request_on_dynamodb(dynamodb_gateway: tuple[Gateway, Recorder]) -> None:
    counts = measure_all(*dynamodb_gateway)
    check_targets("dynamodb", counts)
    assert dict(counts["non-streamed"].operations) == {
        "PutItem(SEG)": 1,  # the audit entry
        "UpdateItem(HEAD)": 1,  # its segment head
        "UpdateItem(LEASE)": 2,  # reserve, settle: on this writer's lease shard, not on the pool item
        "UpdateItem(ROLLUP)": 1,  # the cost rollup
    }
    # the same work whether streamed or not
    assert counts["streamed"] == counts["non-streamed"]
    assert counts["streamed + session"] == counts["non-streamed + session"]


def test_round_trips_per_request_on_sqlite(sqlite_gateway: tuple[Gateway, Recorder]) -> None:
    counts = measure_all(*sqlite_gateway)
    check_targets("sqlite", counts)
    # the audit entry and its head: one call, one commit
    assert dict(counts["non-streamed"].operations) == dict.fromkeys(
        ("reserve", "settle", "append_audit_link", "add_rollup"), 1
    )
    assert counts["streamed"] == counts["non-streamed"]
    assert counts["streamed + session"] == counts["non-streamed + session"]


def limited_trips(gw: Gateway, recorder: Recorder) -> tuple[RoundTrips, RoundTrips]:
    """One request's round trips without a rate limit, then with a key RPM and a tenant TPM limit."""
    created = gw.admin("POST", "/keys", json={"tenant": "rt-limits"}).json()
    key, key_id = created["key"], created["key_id"]
    gw.set_budget("rt-limits", "default", 1_000_000)
    chat_ok(gw, key, {})  # warm-up: key and "no limits" cached, the chain's head
    free = recorder.measure(functools.partial(chat_ok, gw, key, {}))
    assert gw.admin("PUT", f"/limits/rt-limits/keys/{key_id}", json={"rpm": 1000}).status_code == 200
    assert gw.admin("PUT", "/limits/rt-limits", json={"tpm": 1_000_000}).status_code == 200
    chat_ok(gw, key, {})  # warm-up: the limits cached
    return free, recorder.measure(functools.partial(chat_ok, gw, key, {}))


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_a_rate_limit_costs_one_conditional_write_per_limit(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """No limit: no rate-limit round trip at all (the limits lookup is cached). A key RPM and a tenant TPM
    limit: one conditional write each, plus the TPM correction on settle; never a read."""
    gw, recorder = request.getfixturevalue(f"{kind}_gateway")
    free, limited = limited_trips(gw, recorder)
    print(f"\n[{kind}] no limit: {free}\n[{kind}] RPM + TPM: {limited}")
    assert (limited.reads, limited.writes) == (free.reads, free.writes + 3)


def test_alert_thresholds_cost_no_round_trip_on_sqlite(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A webhook configured and the pool's rule with a threshold not reached: the thresholds come from the
    rules the reserve reads anyway (cached), the use from the reserve's own answer: nothing more."""
    recorder = Recorder(store_kind)
    store = CountingStore(SQLiteStore(str(tmp_path / "round-trips.db")), recorder)
    settings = gateway_settings(fake_openai, alert_webhook_url="http://127.0.0.1:9/never-called")
    server = start_gateway(settings, store=store, include_admin=True, allow_open=False)
    counts = measure_all(Gateway(server, fake_openai), recorder, alert_at=[90])
    check_targets("sqlite + alerts", counts)
    assert all("record_alert" not in dict(trips.operations) for trips in counts.values())


def usd_trips(gw: Gateway, recorder: Recorder) -> tuple[RoundTrips, RoundTrips, RoundTrips]:
    """One request's round trips with no USD budget, with the pool's, then with the pool's and the key's."""
    created = gw.admin("POST", "/keys", json={"tenant": "rt-usd"}).json()
    key, key_id = created["key"], created["key_id"]
    gw.set_budget("rt-usd", "default", 1_000_000)
    chat_ok(gw, key, {})  # warm-up: key and "no rules" cached, the chain's head
    free = recorder.measure(functools.partial(chat_ok, gw, key, {}))
    budget = {"tokens": 1_000_000, "usd": 100, "period": "monthly"}
    assert gw.admin("PUT", "/budgets/rt-usd/default", json=budget).status_code == 200
    chat_ok(gw, key, {})  # warm-up: the rules cached
    pool = recorder.measure(functools.partial(chat_ok, gw, key, {}))
    put = gw.admin("PUT", f"/keys/{key_id}/budget", json={"usd": 50, "period": "daily"})
    assert put.status_code == 200, put.text
    chat_ok(gw, key, {})
    return free, pool, recorder.measure(functools.partial(chat_ok, gw, key, {}))


@pytest.mark.parametrize("kind", ["sqlite", "dynamodb"])
def test_a_usd_budget_costs_two_writes_and_no_read(kind: str, request: pytest.FixtureRequest) -> None:
    """Each USD budget that applies (the pool's, the key's) holds the request's cost bound on reserve and
    settles it on finish: two conditional writes each beside the token pool's, the rules cached: no read."""
    gw, recorder = request.getfixturevalue(f"{kind}_gateway")
    free, pool, both = usd_trips(gw, recorder)
    print(f"\n[{kind}] no USD budget: {free}\n[{kind}] pool's: {pool}\n[{kind}] pool's + key's: {both}")
    assert (free.reads, free.writes) == (TARGET_READS, target_writes(kind))
    assert (pool.reads, pool.writes) == (free.reads, free.writes + 2)
    assert (both.reads, both.writes) == (free.reads, free.writes + 4)
