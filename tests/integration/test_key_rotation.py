"""Key rotation over a real socket (SQLite, fake OpenAI, an injected clock): the old secret works during
its grace and is a 401 after it; the new one works at once; limits and audit stay on the same key id; the
CLI prints the new secret once; bad input is a 4xx / exit 2 with nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.clock_helpers import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.cli import main
from tollgate.keys import hash_key
from tollgate.store.sqlite import SQLiteStore

START = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def gw(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path, clock: ManualClock
) -> Gateway:
    store = SQLiteStore(str(tmp_path / "state.db"))
    settings = gateway_settings(fake_openai)
    return Gateway(start_gateway(settings, include_admin=True, store=store, clock=clock), fake_openai)


def test_old_secret_works_during_grace_then_401_and_audit_keeps_the_key_id(
    gw: Gateway, clock: ManualClock
) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme", "pool": "team"}).json()
    old, key_id = created["key"], created["key_id"]
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"rpm": 100}).status_code == 200
    assert gw.chat(old).status_code == 200
    rotated = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 60})
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    new = body["key"]
    assert new != old and body["key_id"] == key_id and body["tenant"] == "acme" and body["pool"] == "team"
    assert "key_hash" not in body
    assert body["old_key_valid_until"].startswith(
        (START + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S")
    )
    during = gw.chat(old)
    assert during.status_code == 200
    assert during.headers["x-ratelimit-limit-requests"] == "100"  # the key's limit: same key id
    assert gw.chat(new).status_code == 200
    clock.now = START + timedelta(seconds=61)
    after = gw.chat(old)
    assert after.status_code == 401 and after.json()["error"]["code"] == "key_expired"
    fresh = gw.chat(new)
    assert (
        fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining-requests"] == "99"
    )  # a new minute
    entries = gw.get(new, "/v1/audit").json()["entries"]
    assert len(entries) == 4 and {e["key_id"] for e in entries} == {key_id}
    listed = gw.admin("GET", "/keys", params={"tenant": "acme"}).json()["keys"]
    assert [k["key_id"] for k in listed] == [key_id]


def test_zero_grace_stops_the_old_secret_now_and_revoke_stops_both(gw: Gateway) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme"}).json()
    old, key_id = created["key"], created["key_id"]
    new = gw.admin("POST", f"/keys/{key_id}/rotate").json()["key"]  # no body: grace 0
    assert gw.chat(old).status_code == 401
    newer = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 3600}).json()["key"]
    assert gw.chat(new).status_code == 200 and gw.chat(newer).status_code == 200
    assert gw.admin("POST", f"/keys/{key_id}/revoke").status_code == 200
    assert [gw.chat(k).json()["error"]["code"] for k in (new, newer)] == ["key_revoked", "key_revoked"]
    refused = gw.admin("POST", f"/keys/{key_id}/rotate")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "key_revoked"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/keys/key_0000000000000000/rotate", {}, 404),
        ("/keys/KEY/rotate", {"grace_seconds": -1}, 400),
        ("/keys/KEY/rotate", {"grace_seconds": "60"}, 400),
        ("/keys/KEY/rotate", {"grace_seconds": 10**9}, 400),
        ("/keys/KEY/rotate", {"grace": 5}, 400),
    ],
)
def test_rotate_bad_input_writes_nothing(
    gw: Gateway, path: str, body: dict[str, object], status: int
) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme"}).json()
    response = gw.admin("POST", path.replace("KEY", created["key_id"]), json=body)
    assert response.status_code == status, response.text
    assert gw.chat(created["key"]).status_code == 200  # the secret is unchanged


def test_cli_rotate_prints_the_new_secret_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "cli.db"))
    assert main(["keys", "create", "--tenant", "acme", "--json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    assert main(["keys", "rotate", key_id, "--grace-seconds", "30", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["key_id"] == key_id and view["key"].startswith("tg-")
    assert main(["keys", "list", "--json"]) == 0
    listing = capsys.readouterr().out
    assert view["key"] not in listing and hash_key(view["key"]) not in listing
    assert main(["keys", "rotate", "key_0000000000000000"]) == 2
    assert "no key 'key_0000000000000000'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["keys", "rotate", key_id, "--grace-seconds", "-5"])
    assert exc.value.code == 2
