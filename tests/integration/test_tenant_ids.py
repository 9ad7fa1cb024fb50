"""Ids taken from another tenant get nothing: its audit segment and page cursor on ``/v1/audit``, its
token reservation on ``/v1/tokens/report``, its key id in a tenant's admin paths; a tenant key gets none
of the admin API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    store = SQLiteStore(str(tmp_path / "tenants.db"))
    server = start_gateway(gateway_settings(fake_openai), include_admin=True, store=store)
    return Gateway(server, fake_openai)


def test_another_tenants_ids_get_nothing(gw: Gateway) -> None:
    alice, bob = gw.new_key("alice"), gw.new_key("bob")
    for _ in range(3):
        assert gw.chat(alice).status_code == 200
    page = gw.get(alice, "/v1/audit", params={"limit": 2}).json()
    segment, cursor = page["entries"][0]["segment"], page["next_before"]
    assert segment and cursor
    assert gw.get(bob, "/v1/audit", params={"segment": segment}).json()["entries"] == []
    assert gw.get(bob, "/v1/audit", params={"before": cursor}).json()["entries"] == []
    assert len(gw.get(alice, "/v1/audit", params={"segment": segment}).json()["entries"]) == 3

    def tokens(key: str, path: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{gw.url}/v1/tokens/{path}", json=body, headers={"x-api-key": key}, timeout=10)

    reservation = tokens(alice, "reserve", {"tokens": 40}).json()["reservation_id"]
    stolen = tokens(bob, "report", {"reservation_id": reservation, "actual": 0})
    assert stolen.status_code == 400 and stolen.json()["error"]["param"] == "reservation_id"
    assert tokens(alice, "report", {"reservation_id": reservation, "actual": 10}).status_code == 200

    alice_key_id = gw.admin("GET", "/keys", params={"tenant": "alice"}).json()["keys"][0]["key_id"]
    wrong = gw.admin("PUT", f"/limits/bob/keys/{alice_key_id}", json={"rpm": 1})
    assert wrong.status_code == 404 and gw.admin("GET", "/limits").json()["limits"] == []
    for method, path in [
        ("GET", "/admin/keys"),
        ("GET", "/admin/costs"),
        ("POST", f"/admin/keys/{alice_key_id}/revoke"),
    ]:
        assert httpx.request(method, f"{gw.url}{path}", headers={"x-api-key": bob}).status_code == 401
    assert gw.chat(alice).status_code == 200  # alice's key was never revoked
