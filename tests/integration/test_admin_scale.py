"""The admin API at many keys: ``GET /admin/keys`` is paged (``limit``, ``after``, ``next_after``), and
the per-key operations (a key's budget, rotation, a key's rate limit) find the key by its id instead of
listing every key of every tenant; the cost reports are summed per group in the store, never every
rollup row of a year in memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.store.base import ApiKey
from tollgate.store.rollup_base import Rollup
from tollgate.store.sqlite import SQLiteStore


class NoFullListing(SQLiteStore):
    """A store on which reading every key is a failure: what costs a whole-table read per call."""

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        raise AssertionError("an admin call listed every key")

    async def list_rollups(
        self, tenant: str | None, since_day: str | None = None, until_day: str | None = None
    ) -> list[Rollup]:
        raise AssertionError("a cost report read every rollup row of its range")


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = NoFullListing(str(tmp_path / "admin.db"))
    server = start_gateway(gateway_settings(fake_openai), include_admin=True, store=store)
    return Gateway(server, fake_openai)


def _key_ids(gw: Gateway, tenant: str, count: int) -> list[str]:
    created = [gw.admin("POST", "/keys", json={"tenant": tenant}) for _ in range(count)]
    assert all(r.status_code == 201 for r in created)
    return [str(r.json()["key_id"]) for r in created]


def test_keys_are_listed_in_pages(gw: Gateway) -> None:
    acme, beta = _key_ids(gw, "acme", 5), _key_ids(gw, "beta", 2)
    listed, after, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = gw.admin("GET", "/keys", params=params).json()
        assert len(page["keys"]) <= 2 and all("key_hash" not in k for k in page["keys"])
        listed += [k["key_id"] for k in page["keys"]]
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert listed == sorted(acme + beta) and pages == 4
    one_tenant = gw.admin("GET", "/keys", params={"tenant": "beta"}).json()
    assert [k["key_id"] for k in one_tenant["keys"]] == sorted(beta) and one_tenant["next_after"] is None


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("after=key%0a1", "after"),
        ("after=", "after"),
        ("after=" + "k" * 65, "after"),
    ],
)
def test_bad_page_parameters_are_400s(gw: Gateway, query: str, param: str) -> None:
    response = gw.admin("GET", f"/keys?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_per_key_admin_calls_find_the_key_by_id(gw: Gateway) -> None:
    key_id, other = _key_ids(gw, "acme", 1)[0], _key_ids(gw, "beta", 1)[0]
    budget = gw.admin("PUT", f"/keys/{key_id}/budget", json={"usd": 5})
    assert budget.status_code == 200 and budget.json()["tenant"] == "acme", budget.text
    assert gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 0}).status_code == 200
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"rpm": 5}).status_code == 200
    # another tenant's key is not this tenant's: a 404 naming the key, nothing written
    wrong = gw.admin("PUT", f"/limits/acme/keys/{other}", json={"rpm": 5})
    assert wrong.status_code == 404 and wrong.json()["error"]["param"] == "key_id"
    assert gw.admin("PUT", "/keys/key_0000000000000000/budget", json={"usd": 5}).status_code == 404
    assert gw.admin("POST", "/keys/key_0000000000000000/rotate").status_code == 404
    limits = gw.admin("GET", "/limits").json()["limits"]
    assert [(lim["tenant"], lim["key_id"]) for lim in limits] == [("acme", key_id)]


def test_cost_reports_are_summed_in_the_store(gw: Gateway) -> None:
    keys = [gw.new_key("acme"), gw.new_key("acme"), gw.new_key("beta")]
    for key in keys:
        assert gw.chat(key).status_code == 200
    by_key = gw.admin("GET", "/costs", params={"group_by": "key"})
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["requests"] == 3 and len(by_key.json()["groups"]) == 3
    by_tenant = gw.admin("GET", "/costs", params={"group_by": "tenant"}).json()  # the console's tenants view
    assert [(g["group"], g["requests"]) for g in by_tenant["groups"]] == [("acme", 2), ("beta", 1)]
    own = gw.get(keys[0], "/v1/costs", params={"group_by": "model"})
    assert own.status_code == 200 and own.json()["requests"] == 2, own.text


def test_budgets_are_listed_a_page_of_tenants_at_a_time(gw: Gateway) -> None:
    tenants = [f"t{n:02d}" for n in range(7)]
    for tenant in reversed(tenants):
        gw.set_budget(tenant, "default", 100)
    assert gw.admin("PUT", "/budgets/t03/default", json={"usd": 5}).status_code == 200
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        page = gw.admin("GET", "/budgets", params=params).json()
        names = sorted({b["tenant"] for b in page["budgets"]})
        assert names == sorted({p["tenant"] for p in page["pools"]}) and len(names) <= 3
        seen += names
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ["local", *tenants] and pages == 3  # open mode's tenant local has its pool too
    one = gw.admin("GET", "/budgets", params={"tenant": "t03"}).json()
    assert [b["kind"] for b in one["budgets"]] == ["tokens", "usd"] and one["next_after"] is None
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": "t 1"}):
        response = gw.admin("GET", "/budgets", params=bad)
        assert response.status_code == 400 and response.json()["error"]["param"] == next(iter(bad))
