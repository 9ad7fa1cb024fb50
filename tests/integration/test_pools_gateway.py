"""A key spends only from the pools its operator gave it, on every endpoint, over a real socket (SQLite).

The issue's repro: a key created with pool ``tiny``, once ``tiny`` is exhausted, named another pool in the
body (``brandnewpool``, ``default``) and got a 200 from a pool the gateway created on the spot. Now every
way of spending answers 403 ``pool_not_allowed`` (a pool outside the key's) or ``unknown_pool`` (one of
the key's pools that does not exist), before any upstream call, and no pool is ever created by a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import MESSAGES, Gateway, gateway_settings
from tollgate.keys import new_key_record
from tollgate.store.sqlite import SQLiteStore

# Every way of spending: (path, body without pool). Streams are refused before their first byte.
SPENDING: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}),
    "chat_stream": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}),
    "session": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "session_id": "s1"}),
    "loop": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "loop_mode": "basic"}),
    "loop_stream": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": MESSAGES, "loop_mode": "basic", "stream": True},
    ),
    "messages": ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MESSAGES}),
    "messages_stream": (
        "/v1/messages",
        {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MESSAGES, "stream": True},
    ),
    "completions": ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hello"}),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}),
    "tokens_check": ("/v1/tokens/check", {"tokens": 10}),
    "tokens_reserve": ("/v1/tokens/reserve", {"tokens": 10}),
    "tokens_report": ("/v1/tokens/report", {"reserved": 10, "actual": 5}),
}


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    settings = gateway_settings(fake_openai)
    store = SQLiteStore(str(tmp_path / "state.db"))
    return Gateway(start_gateway(settings, include_admin=True, store=store), fake_openai)


def spend(gw: Gateway, key: str, kind: str, pool: str | None) -> httpx.Response:
    path, body = SPENDING[kind]
    payload = body if pool is None else {**body, "pool": pool}
    return httpx.post(f"{gw.url}{path}", json=payload, headers={"authorization": f"Bearer {key}"}, timeout=20)


def refusal(response: httpx.Response, kind: str) -> tuple[str, str]:
    """(code, message) of a 403; the Anthropic error shape (/v1/messages) has a type, not a code."""
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    if kind.startswith("messages"):
        assert error["type"] == "permission_error"
        code = "unknown_pool" if "does not exist" in error["message"] else "pool_not_allowed"
        return code, error["message"]
    return error["code"], error["message"]


def pools_of(gw: Gateway, tenant: str) -> dict[str, dict[str, Any]]:
    listed = gw.admin("GET", "/budgets", params={"tenant": tenant}).json()["pools"]
    return {p["pool"]: p for p in listed}


def test_an_exhausted_key_cannot_leave_its_budget_by_naming_another_pool(gw: Gateway) -> None:
    key = gw.new_key("acme", pool="tiny")
    gw.set_budget("acme", "tiny", 90)  # one request reserves 85
    assert gw.chat(key).status_code == 200
    assert gw.chat(key).status_code == 429
    calls = len(gw.upstream.requests)
    for other in ("brandnewpool", "default"):
        refused = gw.chat(key, {"pool": other})
        error = refused.json()["error"]
        assert refused.status_code == 403 and error["code"] == "pool_not_allowed", refused.text
        assert other in error["message"] and error["param"] == "pool"
    assert len(gw.upstream.requests) == calls
    assert set(pools_of(gw, "acme")) == {"tiny"}  # nothing was created


@pytest.mark.parametrize("kind", list(SPENDING))
def test_every_endpoint_refuses_a_pool_outside_the_keys(gw: Gateway, kind: str) -> None:
    key = gw.new_key("acme", pool="team")
    gw.set_budget("acme", "elsewhere", 10**6)  # exists, but is not this key's
    for pool in ("brandnewpool", "default", "elsewhere"):
        code, message = refusal(spend(gw, key, kind, pool), kind)
        assert code == "pool_not_allowed" and f"{pool!r}" in message
    assert gw.upstream.requests == []
    assert set(pools_of(gw, "acme")) == {"team", "elsewhere"}
    assert all(p["used"] == 0 and p["reserved"] == 0 for p in pools_of(gw, "acme").values())


@pytest.mark.parametrize("kind", list(SPENDING))
def test_every_endpoint_refuses_a_pool_that_does_not_exist(gw: Gateway, kind: str, tmp_path: Path) -> None:
    """A key whose pool nobody created (made behind the admin API's back): 403 unknown_pool, naming it."""
    key, record = new_key_record("acme", pool="ghost")

    async def create() -> None:
        store = SQLiteStore(str(tmp_path / "state.db"))
        try:
            await store.create_key(record)
        finally:
            await store.aclose()

    asyncio.run(create())
    code, message = refusal(spend(gw, key, kind, None), kind)
    assert code == "unknown_pool" and "'ghost'" in message and "tollgate budgets set" in message
    assert gw.upstream.requests == []
    assert pools_of(gw, "acme") == {}


@pytest.mark.parametrize("kind", ["chat", "chat_stream", "loop", "messages", "completions", "embeddings"])
def test_extra_pools_the_operator_allows_are_spent_from(gw: Gateway, kind: str) -> None:
    key = gw.new_key("acme", pool="team", pools=["shared"])
    assert set(pools_of(gw, "acme")) == {"team", "shared"}  # created unlimited with the key
    response = spend(gw, key, kind, "shared")
    assert response.status_code == 200, response.text
    pools = pools_of(gw, "acme")
    assert pools["shared"]["used"] > 0 and pools["shared"]["reserved"] == 0 and pools["team"]["used"] == 0


def test_creating_a_key_never_changes_an_existing_pool(gw: Gateway) -> None:
    gw.set_budget("acme", "team", 500)
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "pool": "team", "pools": ["team", "more"]})
    assert created.status_code == 201
    assert created.json()["pools"] == ["more"] and created.json()["pools_created"] == ["more"]
    pools = pools_of(gw, "acme")
    assert pools["team"]["capacity"] == 500 and pools["more"]["capacity"] is None
    bad = gw.admin("POST", "/keys", json={"tenant": "acme", "pools": ["no spaces"]})
    assert bad.status_code == 400


def test_hoosh_reserve_is_bounded_and_reported_by_id(gw: Gateway) -> None:
    key = gw.new_key("acme", pool="team")
    gw.set_budget("acme", "team", 1000)
    headers = {"authorization": f"Bearer {key}"}

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{gw.url}/v1/tokens/{path}", json=body, headers=headers, timeout=10)

    frozen = post("reserve", {"tokens": 10**12})
    assert frozen.status_code == 400 and frozen.json()["error"]["param"] == "tokens"
    reserved = post("reserve", {"tokens": 700}).json()
    assert reserved["reservation_id"].startswith("tok_") and reserved["available"] == 300
    both = post("report", {"reservation_id": reserved["reservation_id"], "reserved": 700, "actual": 1})
    assert both.status_code == 400
    report = post("report", {"reservation_id": reserved["reservation_id"], "actual": 100})
    assert report.json() == {"used": 100, "available": 900}
    again = post("report", {"reservation_id": reserved["reservation_id"], "actual": 100})
    assert again.status_code == 400 and again.json()["error"]["param"] == "reservation_id"
    assert post("check", {"tokens": 900}).json() == {"allowed": True, "available": 900}
