"""USD budgets over a real socket (SQLite): set by the admin API, enforced on chat and messages (429
``budget_exceeded`` naming the budget, in the message and in fields), listed by ``GET /v1/budgets`` (the
caller's own only), an unpriced model refused with a 400, and bad input refused with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import MESSAGES, Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "budgets.db"))
    return Gateway(start_gateway(gateway_settings(fake_openai), include_admin=True, store=store), fake_openai)


def _key(gw: Gateway, **fields: Any) -> tuple[str, str]:
    response = gw.admin("POST", "/keys", json={"tenant": "acme", "pool": "team", **fields})
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["key_id"]


def _budgets(gw: Gateway, key: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    response = gw.get(key, "/v1/budgets")
    assert response.status_code == 200, response.text
    return {(b["kind"], b["scope"], b["name"]): b for b in response.json()["budgets"]}


def test_a_daily_key_budget_refuses_with_a_429_that_says_which(gw: Gateway) -> None:
    # gpt-4o-mini: 0.60 USD/M output; each chat may cost up to ~50 micro-USD (50 max_tokens + its prompt)
    key, key_id = _key(gw, budget_usd=0.00006, budget_period="daily", budget_alert_at=[80])
    served = [gw.chat(key) for _ in range(8)]
    codes = [r.status_code for r in served]
    assert codes[0] == 200 and 429 in codes, codes
    refused = served[codes.index(429)]
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
    budget = error["budget"]
    assert (budget["kind"], budget["scope"], budget["name"], budget["period"]) == (
        "usd",
        "key",
        key_id,
        "daily",
    )
    assert budget["limit"] == 60 and budget["unit"] == "micro_usd"
    assert budget["remaining"] < budget["needed"] and budget["resets_at"].endswith("T00:00:00.000000Z")
    assert error["message"].startswith(f"the daily USD budget of key '{key_id}' is exhausted: ")
    assert f"resets at {budget['resets_at']}" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    # /v1/messages carries the same message in Anthropic's shape
    body = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": MESSAGES}
    anthropic = httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": key}, timeout=20)
    assert anthropic.status_code == 429
    assert anthropic.json()["error"]["message"].startswith(f"the daily USD budget of key '{key_id}'")
    shown = _budgets(gw, key)
    daily = shown["usd", "key", key_id]
    assert daily["spent"] > 0 and daily["reserved"] == 0 and daily["alert_at"] == [80]
    assert daily["remaining"] == 60 - daily["spent"] and daily["timezone"] == "UTC"
    costs = gw.get(key, "/v1/costs").json()
    assert costs["total_cost_micro_usd"] == daily["spent"]  # settled = what the audit charged


def test_a_pool_budget_applies_to_every_key_of_the_pool_and_show_lists_only_the_callers(gw: Gateway) -> None:
    put = gw.admin(
        "PUT", "/budgets/acme/team", json={"usd": 0.00006, "period": "weekly", "timezone": "Europe/Berlin"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["usd_budget"]["limit"] == 60 and put.json()["capacity"] is None
    first, _ = _key(gw)
    second, _ = _key(gw)
    other = gw.new_key("beta")
    statuses = [gw.chat(k).status_code for k in (first, second) * 4]
    assert 429 in statuses
    refused = next(r for r in (gw.chat(first), gw.chat(second)) if r.status_code == 429)
    assert (
        "the weekly USD budget of pool 'team' (Europe/Berlin) is exhausted"
        in refused.json()["error"]["message"]
    )
    assert gw.chat(other).status_code == 200  # another tenant's budget is its own
    shown = _budgets(gw, first)
    assert set(shown) == {("tokens", "pool", "team"), ("usd", "pool", "team")}
    weekly = shown["usd", "pool", "team"]
    assert weekly["period"] == "weekly" and weekly["resets_at"] is not None
    assert set(_budgets(gw, other)) == {("tokens", "pool", "default")}  # beta never sees acme's
    listed = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()
    assert {(b["kind"], b["name"]) for b in listed["budgets"]} == {("tokens", "team"), ("usd", "team")}


def test_a_token_pool_refusal_names_the_pool(gw: Gateway) -> None:
    key, _ = _key(gw)
    gw.set_budget("acme", "team", 10)
    refused = gw.chat(key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["message"].startswith("the token budget of pool 'team' is exhausted: this request may need ")
    assert error["message"].endswith("10 remain; it does not reset (no period)")
    assert error["budget"]["kind"] == "tokens" and error["budget"]["resets_at"] is None
    # no reset time to wait for: no Retry-After, and the SDKs are told not to retry
    assert "retry-after" not in refused.headers and refused.headers["x-should-retry"] == "false"


def test_an_unpriced_model_under_a_usd_budget_is_a_400(gw: Gateway) -> None:
    key, key_id = _key(gw, budget_usd=5)
    refused = gw.chat(key, {"model": "gpt-unpriced-anywhere"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "model_not_priced" and "TOLLGATE_PRICING_FILE" in error["message"]
    assert gw.upstream.requests == []  # never sent upstream
    free, _ = _key(gw)  # no USD budget: an unpriced model is served (and counted as unpriced)
    assert gw.chat(free, {"model": "gpt-unpriced-anywhere"}).status_code == 200
    assert _budgets(gw, key)["usd", "key", key_id]["spent"] == 0


def test_a_key_budget_is_changed_by_the_admin_api(gw: Gateway) -> None:
    key, key_id = _key(gw)
    changed = gw.admin(
        "PUT", f"/keys/{key_id}/budget", json={"usd": 1.5, "period": "monthly", "alert_at": [90, 50]}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["usd_budget"]["limit"] == 1_500_000 and changed.json()["alert_at"] == [50, 90]
    again = gw.admin("PUT", f"/keys/{key_id}/budget", json={"timezone": "America/New_York"})
    assert again.json()["usd_budget"]["period"] == "monthly"  # what was not given stays
    assert _budgets(gw, key)["usd", "key", key_id]["timezone"] == "America/New_York"
    removed = gw.admin("PUT", f"/keys/{key_id}/budget", json={"usd": None})
    assert removed.json()["usd_budget"] is None and ("usd", "key", key_id) not in _budgets(gw, key)
    assert gw.admin("PUT", "/keys/key_nope/budget", json={"usd": 1}).status_code == 404


BAD = [
    ({"usd": -1}, "usd", "greater than or equal to 0"),
    ({"usd": "5"}, "usd", "valid number"),
    ({"usd": True}, "usd", "valid number"),
    ({"usd": 10**10}, "usd", "less than or equal to"),
    ({"usd": 0.0000001}, "usd", "at most 6 decimals"),
    ({"usd": 5, "period": "yearly"}, "period", "'daily', 'weekly', 'monthly' or 'none'"),
    ({"usd": 5, "timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
    ({"usd": 5, "alert_at": [0]}, "alert_at[0]", "greater than or equal to 1"),
    ({}, None, "give at least one of"),
]


@pytest.mark.parametrize(("body", "param", "says"), BAD, ids=[str(b[0]) for b in BAD])
def test_bad_budgets_are_a_400_and_write_nothing(
    gw: Gateway, body: dict[str, Any], param: str | None, says: str
) -> None:
    response = gw.admin("PUT", "/budgets/acme/fresh", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and says in error["message"]
    key_fields = {f"budget_{k}": v for k, v in body.items()} or {"budget_period": "daily"}
    created = gw.admin("POST", "/keys", json={"tenant": "acme", **key_fields})
    assert created.status_code == 400, created.text
    listed = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()
    assert listed == {"pools": [], "budgets": [], "next_after": None}
    assert gw.admin("GET", "/keys", params={"tenant": "acme"}).json()["keys"] == []
