"""Costs over HTTP come from the rollups: ``/v1/costs`` (the caller's tenant), ``GET /admin/costs`` and
``GET /admin/costs/verify`` (rollups recomputed from the audit entries, an edited row named); bad ranges
and names are 400s that write nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.store.rollup_base import Rollup
from tollgate.store.sqlite import SQLiteStore
from tollgate.timeutil import now_str


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "costs.db"))
    server = start_gateway(gateway_settings(fake_openai), include_admin=True, store=store)
    return Gateway(server, fake_openai)


def test_costs_read_the_rollups_and_verify_names_an_edited_row(gw: Gateway, tmp_path: Path) -> None:
    acme, beta = gw.new_key("acme"), gw.new_key("beta")
    for key in (acme, acme, beta):
        assert gw.chat(key).status_code == 200
    mine = gw.get(acme, "/v1/costs", params={"group_by": "model"}).json()
    today = now_str()[:10]
    assert (mine["tenant"], mine["requests"], mine["since_day"]) == ("acme", 2, None)
    assert [g["group"] for g in mine["groups"]] == ["openai/gpt-4o-mini"]
    assert mine["groups"][0]["prompt_tokens"] > 0 and mine["total_cost_micro_usd"] > 0
    ranged = gw.get(acme, "/v1/costs", params={"since": f"{today}T12:34:00Z", "group_by": "day"}).json()
    assert (ranged["since_day"], [g["group"] for g in ranged["groups"]]) == (today, [today])
    assert gw.get(acme, "/v1/costs", params={"since": "2999-01-01"}).json()["requests"] == 0
    every = gw.admin("GET", "/costs", params={"group_by": "key"}).json()
    assert every["requests"] == 3 and len(every["groups"]) == 2
    check = gw.admin("GET", "/costs/verify").json()
    assert (check["valid"], check["differences"], check["rows"]) == (True, [], 2)

    async def edit() -> None:  # someone with write access to the store lowers acme's bill
        store = SQLiteStore(str(tmp_path / "costs.db"))
        try:
            [row] = await store.list_rollups("acme")
            await store.add_rollup(replace(Rollup(*row.cell), cost_micro_usd=-row.cost_micro_usd))
        finally:
            await store.aclose()

    asyncio.run(edit())
    assert gw.get(acme, "/v1/costs").json()["total_cost_micro_usd"] == 0
    edited = gw.admin("GET", "/costs/verify", params={"tenant": "acme", "since": today}).json()
    [diff] = edited["differences"]
    assert edited["valid"] is False and (diff["tenant"], diff["day"]) == ("acme", today)
    assert diff["rollup"]["cost_micro_usd"] == 0 < diff["audit"]["cost_micro_usd"]
    assert gw.admin("GET", "/costs/verify", params={"tenant": "beta"}).json()["valid"] is True


@pytest.mark.parametrize(
    "params",
    [
        {"until": "0001-01-01"},
        {"since": "0500-01-01", "until": "0600-01-01"},
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"},
    ],
)
def test_dates_from_year_1_to_9999_are_served(gw: Gateway, params: dict[str, str]) -> None:
    """Found by a hostile review: a year below 1000 was spelled without its leading zeros (a 500)."""
    key = gw.new_key("acme")
    assert gw.chat(key).status_code == 200  # today's request is outside each range but the last
    for response in (
        gw.get(key, "/v1/costs", params=params),
        gw.admin("GET", "/costs", params=params),
        gw.admin("GET", "/costs/verify", params=params),
    ):
        assert response.status_code == 200, response.text
        assert response.json()["since_day"] == (params["since"][:10] if "since" in params else None)
    requests = gw.get(key, "/v1/costs", params=params).json()["requests"]
    assert requests == (1 if params["until"].startswith("9999") else 0)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "9999-12-31T23:59:59-23:59"}, "since"),  # in UTC, after 9999-12-31
        ({"until": "0001-01-01T00:00:00+23:59"}, "until"),  # in UTC, before 0001-01-01
    ],
)
def test_a_time_outside_the_calendar_in_utc_is_a_400(gw: Gateway, params: dict[str, str], param: str) -> None:
    key = gw.new_key("acme")
    for response in (
        gw.get(key, "/v1/costs", params=params),
        gw.admin("GET", "/costs", params=params),
        gw.admin("GET", "/costs/verify", params=params),
    ):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and "out of range" in error["message"], error


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/costs/verify", {"since": "last week"}, "since"),
        ("/costs/verify", {"until": "2026-13-01"}, "until"),
        ("/costs/verify", {"tenant": "a b"}, "tenant"),
        ("/costs", {"since": "yesterday-ish"}, "since"),
    ],
)
def test_bad_cost_queries_are_400s(gw: Gateway, path: str, params: dict[str, str], param: str) -> None:
    response = gw.admin("GET", path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
