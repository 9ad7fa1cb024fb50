"""Keys, budgets, costs, audit and sessions through the gateway on a real socket (SQLite store)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, MESSAGES, Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    settings = gateway_settings(fake_openai)
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(tmp_path / "state.db")))
    return Gateway(server, fake_openai)


def test_open_mode_ends_with_the_first_key(gw: Gateway) -> None:
    assert gw.chat(None).status_code == 200  # open loopback mode, tenant "local"
    key = gw.new_key("acme")
    assert gw.chat(None).status_code == 401
    assert gw.chat("tg-not-a-real-key").status_code == 401
    assert gw.chat(key).status_code == 200
    response = httpx.post(
        f"{gw.url}/v1/chat/completions", json={"messages": MESSAGES}, headers={"x-api-key": key}
    )  # the anthropic SDK's header
    assert response.status_code == 200


def test_revoked_and_expired_keys_are_refused(gw: Gateway) -> None:
    key = gw.new_key("acme")
    key_id = gw.admin("GET", "/keys", params={"tenant": "acme"}).json()["keys"][0]["key_id"]
    assert gw.chat(key).status_code == 200
    assert gw.admin("POST", f"/keys/{key_id}/revoke").status_code == 200
    refused = gw.chat(key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"
    short = gw.new_key("acme", expires_in=1)
    assert gw.chat(short).status_code == 200
    time.sleep(1.1)
    assert gw.chat(short).json()["error"]["code"] == "key_expired"


def test_model_allow_list_is_403(gw: Gateway) -> None:
    key = gw.new_key("acme", models=["openai/gpt-4o-mini", "llama_cpp/*"])
    assert gw.chat(key).status_code == 200
    denied = gw.chat(key, {"model": "gpt-4o"})
    assert denied.status_code == 403 and denied.json()["error"]["type"] == "permission_error"
    ids = {m["id"] for m in gw.get(key, "/v1/models").json()["data"]}
    assert ids == {"openai/gpt-4o-mini", "llama_cpp/smollm2"}


def test_budget_exhaustion_is_429_before_any_upstream_call(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 90)  # a request reserves 50 (max_tokens) + 11 prompt bytes + 24 framing
    assert gw.chat(key).status_code == 200
    calls = len(gw.upstream.requests)
    refused = gw.chat(key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    assert len(gw.upstream.requests) == calls
    pools = gw.get(key, "/v1/tokens/pools").json()["pools"]
    assert pools[0]["used"] == 11 + 3 and pools[0]["reserved"] == 0  # settled with the upstream's usage


def test_concurrent_requests_never_spend_past_capacity(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 400)  # admits four 85-token reservations at a time
    gw.upstream.script = Script(initial_delay=1.0)  # each admitted request holds its reservation for 1 s

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            responses = await asyncio.gather(
                *[
                    client.post(
                        f"{gw.url}/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"model": "gpt-4o-mini", "messages": MESSAGES},
                    )
                    for _ in range(40)
                ]
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(burst())
    admitted = statuses.count(200)
    assert admitted == 4 and statuses.count(429) == 36
    assert len(gw.upstream.requests) == admitted
    pool = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["pools"][0]
    assert pool["used"] == admitted * 14 and pool["reserved"] == 0 and pool["used"] <= 400


def test_costs_header_and_endpoint(gw: Gateway) -> None:
    key = gw.new_key("acme")
    first = gw.chat(key)
    assert first.headers["x-tollgate-cost-usd"] == "0.000003"  # 11 x 0.15 + 3 x 0.60 = 3.45 micro-USD
    assert first.json()["tollgate"]["cost_usd"] == "0.000003"
    assert gw.chat(key, {"model": "llama_cpp/smollm2"}).status_code == 503  # nothing listens there
    summary = gw.get(key, "/v1/costs", params={"group_by": "model"}).json()
    assert summary["requests"] == 1 and summary["refused"] == 1 and summary["total_cost_micro_usd"] == 3
    groups = {g["group"]: g for g in summary["groups"]}
    assert groups["llama_cpp/smollm2"]["cost_micro_usd"] == 0
    assert groups["llama_cpp/smollm2"]["requests"] == 0 and groups["llama_cpp/smollm2"]["refused"] == 1
    since_tomorrow = gw.get(key, "/v1/costs", params={"since": "2999-01-01"}).json()
    assert since_tomorrow["requests"] == 0
    assert gw.get(key, "/v1/costs", params={"group_by": "planet"}).status_code == 400


def test_audit_chain_of_concurrent_requests_verifies(gw: Gateway) -> None:
    key = gw.new_key("acme")

    async def burst() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(
                *[
                    client.post(
                        f"{gw.url}/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}"},
                        json={"messages": MESSAGES, "stream": n % 2 == 0},
                    )
                    for n in range(50)
                ]
            )

    asyncio.run(burst())
    page = gw.get(key, "/v1/audit", params={"limit": 1000}).json()
    assert page["chain_valid"] is True and len(page["entries"]) == 50
    assert [e["seq"] for e in page["entries"]] == list(range(1, 51))
    assert all("hello there" not in json.dumps(e) for e in page["entries"])
    assert gw.admin("GET", "/audit/verify").json()["valid"] is True


def test_stream_disconnect_still_settles_and_audits(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 10_000)
    gw.upstream.script = Script(texts=["a"] * 30, delay=0.1)
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content":"a"' in line:
                break  # hang up after the first token
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = gw.get(key, "/v1/audit").json()["entries"]
        if entries:
            break
        time.sleep(0.05)
    assert entries[0]["status"] == "client_closed"
    pool = gw.get(key, "/v1/tokens/pools").json()["pools"][0]
    assert pool["reserved"] == 0 and pool["open_reservations"] == 0 and pool["used"] > 0


def test_sessions_prepend_history_and_are_tenant_scoped(gw: Gateway) -> None:
    alice, bob = gw.new_key("alice"), gw.new_key("bob")
    gw.chat(alice, {"session_id": "s1", "messages": [{"role": "user", "content": "my name is Ann"}]})
    gw.chat(
        alice,
        {
            "session_id": "s1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "what is my name?"},
            ],
        },
    )
    sent = gw.upstream.requests[-1][2]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "my name is Ann" and sent[2]["content"] == "Hello from fake"
    gw.chat(bob, {"session_id": "s1", "messages": [{"role": "user", "content": "hi"}]})
    assert [m["content"] for m in gw.upstream.requests[-1][2]["messages"]] == ["hi"]  # bob's own s1
    gw.upstream.script = Script(status=500)
    gw.chat(alice, {"session_id": "s1"})  # a failed request appends nothing
    gw.upstream.script = Script()
    gw.chat(alice, {"session_id": "s1"})
    assert len(gw.upstream.requests[-1][2]["messages"]) == 5
    assert httpx.delete(f"{gw.url}/v1/sessions/s1", headers={"x-api-key": bob}).status_code == 204
    assert httpx.delete(f"{gw.url}/v1/sessions/s1", headers={"x-api-key": bob}).status_code == 404
    gw.chat(alice, {"session_id": "s1"})
    assert len(gw.upstream.requests[-1][2]["messages"]) == 7  # alice's s1 untouched by bob's delete


def test_tenants_never_see_each_other(gw: Gateway) -> None:
    alice, bob = gw.new_key("alice"), gw.new_key("bob")
    gw.chat(alice)
    gw.chat(alice)
    assert gw.get(bob, "/v1/costs").json()["requests"] == 0
    assert gw.get(bob, "/v1/audit").json()["entries"] == []
    assert [(p["pool"], p["used"]) for p in gw.get(bob, "/v1/tokens/pools").json()["pools"]] == [
        ("default", 0)
    ]
    assert len(gw.get(alice, "/v1/audit").json()["entries"]) == 2
    refused = gw.chat(bob, {"pool": "alice-pool"})  # a pool name is always the caller's own: not bob's
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "pool_not_allowed"
    assert {p["pool"] for p in gw.get(alice, "/v1/tokens/pools").json()["pools"]} == {"default"}


def test_a_key_lists_only_the_pools_it_may_spend_from(gw: Gateway) -> None:
    narrow, wide = gw.new_key("acme"), gw.new_key("acme", pools=["team-secret"])
    gw.set_budget("acme", "team-secret", 1000)
    assert [p["pool"] for p in gw.get(narrow, "/v1/tokens/pools").json()["pools"]] == ["default"]
    assert {p["pool"] for p in gw.get(wide, "/v1/tokens/pools").json()["pools"]} == {"default", "team-secret"}


def test_hoosh_token_endpoints(gw: Gateway) -> None:
    key = gw.new_key("acme", pools=["tools"])
    gw.set_budget("acme", "tools", 1000)

    def post(path: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{gw.url}/v1/tokens/{path}", json=body, headers={"authorization": f"Bearer {key}"})

    assert post("check", {"pool": "tools", "tokens": 900}).json() == {"allowed": True, "available": 1000}
    reserved = post("reserve", {"pool": "tools", "tokens": 600}).json()
    assert reserved.pop("reservation_id").startswith("tok_")
    assert reserved == {"reserved": 600, "available": 400}
    assert post("check", {"pool": "tools", "tokens": 500}).json() == {"allowed": False, "available": 400}
    refused = post("reserve", {"pool": "tools", "tokens": 500})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    assert post("report", {"pool": "tools", "reserved": 600, "actual": 250}).json() == {
        "used": 250,
        "available": 750,
    }
    assert post("report", {"pool": "tools", "reserved": 600, "actual": 1}).status_code == 400
    assert post("reserve", {"pool": "tools", "tokens": -1}).status_code == 400


def test_metrics_and_diagnostics_need_the_admin_key_once_keys_exist(gw: Gateway) -> None:
    assert httpx.get(f"{gw.url}/metrics").status_code == 200
    key = gw.new_key("acme")
    assert httpx.get(f"{gw.url}/metrics").status_code == 401
    assert gw.get(key, "/diagnostics/requests").status_code == 401
    assert httpx.get(f"{gw.url}/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
    assert httpx.get(f"{gw.url}/health").status_code == 200


def test_admin_api_needs_the_admin_key(gw: Gateway) -> None:
    assert httpx.get(f"{gw.url}/admin/keys").status_code == 401
    assert httpx.get(f"{gw.url}/admin/keys", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert gw.admin("GET", "/keys").status_code == 200
    assert gw.admin("POST", "/keys", json={"tenant": "bad tenant!"}).status_code == 400


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_logs_never_contain_secrets(gw: Gateway) -> None:
    collector = _Collect()
    logging.getLogger("tollgate").addHandler(collector)
    try:
        key = gw.new_key("acme")
        gw.chat(key, {"stream": True})
        gw.chat(key)
        gw.chat("tg-wrong-key")
        gw.upstream.script = Script(status=401)
        gw.chat(key)
    finally:
        logging.getLogger("tollgate").removeHandler(collector)
    logs = "\n".join(collector.lines)
    assert '"event":"request"' in logs
    for secret in (key, "tg-wrong-key", "sk-upstream-secret", AUDIT_KEY, ADMIN_KEY, "hello there"):
        assert secret not in logs
