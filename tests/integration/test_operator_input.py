"""Hostile operator input on the admin API, over a real socket: key names and allow-lists with control
characters, budget timezones that differ from host to host, and a verification of a tenant that has no
audit log: each a 4xx naming the parameter, with nothing written."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "operator.db"))
    server = start_gateway(gateway_settings(fake_openai), include_admin=True, store=store)
    return Gateway(server, fake_openai)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tenant": "acme", "name": "a\u001b[2Jb"}, "name"),
        ({"tenant": "acme", "name": "two\nlines"}, "name"),
        ({"tenant": "acme", "name": "x" * 201}, "name"),
        ({"tenant": "acme", "models": ["gpt-4o", "a\u0000b"]}, "models[1]"),
        ({"tenant": "acme", "models": ["gpt-4o\r\nx-injected: 1"]}, "models[0]"),
        ({"tenant": "acme", "budget_usd": 5, "budget_timezone": "localtime"}, "budget_timezone"),
        ({"tenant": "acme", "budget_usd": 5, "budget_timezone": "right/UTC"}, "budget_timezone"),
    ],
)
def test_a_bad_key_body_is_a_400_and_creates_nothing(
    gw: Gateway, body: dict[str, object], param: str
) -> None:
    response = gw.admin("POST", "/keys", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert gw.admin("GET", "/keys").json()["keys"] == []


def test_a_host_timezone_is_refused_for_a_pool_budget(gw: Gateway) -> None:
    gw.set_budget("acme", "team", 100)
    for zone in ("localtime", "posixrules", "Factory", "posix/Europe/Berlin"):
        body = {"usd": 5, "period": "daily", "timezone": zone}
        response = gw.admin("PUT", "/budgets/acme/team", json=body)
        assert response.status_code == 400 and response.json()["error"]["param"] == "timezone", zone
    assert gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["budgets"][0]["kind"] == "tokens"
    fine = gw.admin("PUT", "/budgets/acme/team", json={"usd": 5, "period": "daily", "timezone": "Asia/Tokyo"})
    assert fine.status_code == 200, fine.text


def test_verifying_a_tenant_without_an_audit_log_is_a_404(gw: Gateway) -> None:
    key = gw.new_key("acme", name="ci — nightly é")  # a name with non-ASCII text is fine
    missing = gw.admin("GET", "/audit/verify", params={"tenant": "acme"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "tenant"
    assert gw.chat(key).status_code == 200
    found = gw.admin("GET", "/audit/verify", params={"tenant": "acme"}).json()
    assert found["valid"] is True and found["tenants"]["acme"]["entries"] == 1
    assert gw.admin("GET", "/audit/verify", params={"tenant": "acmee"}).status_code == 404


def test_a_cost_verification_names_at_most_a_thousand_rows(gw: Gateway, tmp_path: Path) -> None:
    """Rollup rows the audit log does not back (an edited table, or data before a backfill): the answer
    names the first 1,000 and counts them all, so it stays far below a buffered Lambda answer's 6 MB."""
    gw.new_key("acme")
    cells = [("acme", f"2026-01-{1 + n % 28:02d}", f"key_{n:04d}", "openai", "m", 1) for n in range(1500)]
    with sqlite3.connect(tmp_path / "operator.db") as conn:
        conn.executemany(
            "INSERT INTO cost_rollups (tenant, day, key_id, provider, model, requests) VALUES (?,?,?,?,?,?)",
            cells,
        )
    conn.close()
    answer = gw.admin("GET", "/costs/verify", params={"tenant": "acme"})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["valid"] is False and result["differences_total"] == 1500 and result["rows"] == 1500
    assert len(result["differences"]) == 1000
    assert (
        result["differences"][0]["rollup"]["requests"] == 1
        and result["differences"][0]["audit"]["requests"] == 0
    )
    narrow = gw.admin("GET", "/costs/verify", params={"tenant": "acme", "since": "2026-01-28"}).json()
    assert (
        narrow["differences_total"]
        == len(narrow["differences"])
        == len([c for c in cells if c[1] >= "2026-01-28"])
    )
