"""The admin CLI on a SQLite store: keys, budgets, audit verify/export, costs (each a real subprocess)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def tollgate(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env["TOLLGATE_SQLITE_PATH"] = str(tmp_path / "cli.db")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tollgate.cli", *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.db = tmp_path / "cli.db"  # type: ignore[attr-defined]
    return run


def test_keys_lifecycle(tollgate) -> None:  # type: ignore[no-untyped-def]
    args = ["--name", "ci", "--models", "openai/*,claude/*", "--pool", "team", "--expires-in", "3600"]
    created = json.loads(tollgate("keys", "create", "--tenant", "acme", *args, "--json").stdout)
    assert created["key"].startswith("tg-") and len(created["key"]) >= 3 + 43
    assert created["tenant"] == "acme" and created["pool"] == "team"
    assert created["models"] == ["openai/*", "claude/*"] and created["expires_at"]
    assert created["pools"] == [] and created["pools_created"] == ["team"]
    human = tollgate("keys", "create", "--tenant", "other").stdout
    assert human.startswith("tg-") and "only time the key is shown" in human
    listed = json.loads(tollgate("keys", "list", "--tenant", "acme", "--json").stdout)
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    assert created["key"] not in tollgate("keys", "list").stdout
    assert tollgate("keys", "revoke", created["key_id"]).returncode == 0
    assert json.loads(tollgate("keys", "list", "--tenant", "acme", "--json").stdout)[0]["revoked_at"]
    assert tollgate("keys", "revoke", "key_nope", check=False).returncode == 2  # an unknown id: exit 2
    stored = sqlite3.connect(tollgate.db).execute("select * from keys").fetchall()
    assert created["key"] not in repr(stored)  # only the hash is stored


def test_budgets(tollgate) -> None:  # type: ignore[no-untyped-def]
    result = tollgate("budgets", "set", "--tenant", "acme", "--pool", "team", "--tokens", "5000")
    shown = json.loads(result.stdout)
    assert shown["capacity"] == 5000 and shown["remaining"] == 5000
    rows = json.loads(tollgate("budgets", "show", "--tenant", "acme", "--json").stdout)
    assert rows == [
        {
            "tenant": "acme",
            "kind": "tokens",
            "scope": "pool",
            "name": "team",
            "period": "none",
            "timezone": None,
            "unit": "tokens",
            "limit": 5000,
            "spent": 0,
            "reserved": 0,
            "remaining": 5000,
            "overdrawn": 0,
            "period_key": "all",
            "resets_at": None,
            "alert_at": [],
            "pool": "team",
            "capacity": 5000,
            "used": 0,
            "open_reservations": 0,
        }
    ]
    assert "team" in tollgate("budgets", "show", "--tenant", "acme").stdout
    swept = json.loads(tollgate("budgets", "sweep", "--older-than", "1800").stdout)
    assert swept == {
        "reservations_swept": 0,
        "usd_reservations_swept": 0,
        "abandoned_audited": 0,
        "sessions_deleted": 0,
        "responses_deleted": 0,
        "containers_deleted": 0,
        "alerts_deleted": 0,
    }


def test_budget_alert_thresholds(tollgate) -> None:  # type: ignore[no-untyped-def]
    base = ("budgets", "set", "--tenant", "acme", "--pool", "team", "--tokens", "5000")
    shown = json.loads(tollgate(*base, "--alert-at", "100, 50,80,50").stdout)
    assert shown["alert_at"] == [50, 80, 100] and shown["capacity"] == 5000
    table = tollgate("budgets", "show", "--tenant", "acme").stdout
    assert "alert_at" in table and "50,80,100" in table
    for bad in ("0", "1001", "50,abc", "-5", "50,,80", "2.5"):
        refused = tollgate(
            "budgets",
            "set",
            "--tenant",
            "acme",
            "--pool",
            "team",
            "--tokens",
            "1",
            "--alert-at",
            bad,
            check=False,
        )
        assert refused.returncode == 2 and refused.stdout == "", bad
        assert (
            "--alert-at" in refused.stderr
            and "whole percent" in refused.stderr
            and "Traceback" not in refused.stderr
        )
    rows = json.loads(tollgate("budgets", "show", "--tenant", "acme", "--json").stdout)
    assert [(r["capacity"], r["alert_at"]) for r in rows] == [(5000, [50, 80, 100])]  # nothing written
    assert json.loads(tollgate(*base).stdout)["alert_at"] == [50, 80, 100]  # --tokens alone keeps them
    assert json.loads(tollgate(*base, "--alert-at", "").stdout)["alert_at"] == []  # '' clears them


def test_a_sweep_younger_than_the_max_age_is_refused(tollgate) -> None:  # type: ignore[no-untyped-def]
    _reserve(tollgate.db, "2999-01-01T00:00:00.000000Z")  # would be swept by any cutoff in the future
    refused = tollgate("budgets", "sweep", "--older-than", "1799", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "TOLLGATE_RESERVATION_MAX_AGE_SECONDS (1800)" in refused.stderr
    rows = json.loads(tollgate("budgets", "show", "--tenant", "acme", "--json").stdout)
    assert rows[0]["reserved"] == 400 and rows[0]["used"] == 0


def _reserve(db: Path, at: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from tollgate.store.base import Holder\n"
        "from tollgate.store.sqlite import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(sys.argv[1]); await store.init_schema()\n"
        "    await store.set_capacity('acme', 'default', 1000)\n"
        "    holder = Holder('key_1', 'openai', 'gpt-4o-mini')\n"
        "    await store.reserve('acme', 'default', 'crashed-request', 400, sys.argv[2], holder)\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db), at], check=True, timeout=60)


def test_sweep_charges_and_audits_a_reservation_nobody_settled(tollgate) -> None:  # type: ignore[no-untyped-def]
    _reserve(tollgate.db, "2026-01-01T00:00:00.000000Z")
    assert json.loads(tollgate("budgets", "sweep").stdout)["reservations_swept"] == 1
    rows = json.loads(tollgate("budgets", "show", "--tenant", "acme", "--json").stdout)
    assert rows[0]["reserved"] == 0 and rows[0]["used"] == 400 and rows[0]["remaining"] == 600
    exported = [json.loads(line) for line in tollgate("audit", "export").stdout.splitlines()]
    entries = [e for e in exported if e["segment"] != "registry"]  # export includes the segment registry
    assert [(e["request_id"], e["status"], e["completion_tokens"], e["key_id"]) for e in entries] == [
        ("crashed-request", "abandoned", 400, "key_1")
    ]
    assert tollgate("audit", "verify").returncode == 0


def _append_entries(db: Path, count: int) -> None:
    code = (
        "import asyncio, sys\n"
        "from tollgate import audit\n"
        "from tollgate.store.sqlite import SQLiteStore\n"
        "from tollgate.store.audit_base import AuditEntry\n"
        "async def main():\n"
        "    store = SQLiteStore(sys.argv[1]); await store.init_schema()\n"
        "    for n in range(int(sys.argv[2])):\n"
        "        at = f'2026-11-0{1 + n % 3}T00:00:00.000000Z'\n"
        "        entry = AuditEntry('acme', 0, at, f'r{n}', 'key_1', 'openai',\n"
        "                           'gpt-4o-mini', 'ok', 10, 5, 4, 'a' * 64, 'b' * 64, '', '')\n"
        "        await audit.append(store, entry, None)\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db), str(count)], check=True, timeout=60)


def test_audit_verify_export_and_tamper(tollgate) -> None:  # type: ignore[no-untyped-def]
    tollgate("store", "init")
    _append_entries(tollgate.db, 5)
    ok = tollgate("audit", "verify")
    assert "acme: ok, 5 entries" in ok.stdout
    lines = tollgate("audit", "export", "--tenant", "acme").stdout.splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    with sqlite3.connect(tollgate.db) as db:
        db.execute("update audit_entries set prompt_tokens = 9999 where tenant = 'acme' and seq = 3")
    broken = tollgate("audit", "verify", "--tenant", "acme", check=False)
    assert broken.returncode == 1 and "BROKEN at seq 3" in broken.stdout


def test_costs(tollgate) -> None:  # type: ignore[no-untyped-def]
    tollgate("store", "init")
    _append_entries(tollgate.db, 6)  # entries without rollups: data written before rollups existed
    assert "total $0.000000 over 0 requests" in tollgate("costs").stdout
    lone = tollgate("costs", "--repair", check=False)
    assert lone.returncode == 2 and "--repair needs --verify" in lone.stderr
    unchecked = tollgate("costs", "--verify", check=False)
    assert unchecked.returncode == 1, unchecked.stdout
    assert unchecked.stdout.count("DIFFERS acme/2026-11-0") == 3
    assert "requests 0 (audit 2)" in unchecked.stdout and "cost_micro_usd 0 (audit 8)" in unchecked.stdout
    repaired = tollgate("costs", "--verify", "--repair", check=False)
    assert repaired.returncode == 1 and "repaired 3 rows" in repaired.stdout  # backfilled
    assert "cost rollups match the audit entries: 3 rows" in tollgate("costs", "--verify").stdout
    result = json.loads(tollgate("costs", "--tenant", "acme", "--by", "day", "--json").stdout)
    assert result["total_cost_usd"] == 0.000024 and result["total_cost_micro_usd"] == 24
    assert [g["group"] for g in result["groups"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    since = json.loads(tollgate("costs", "--since", "2026-11-02", "--json").stdout)
    assert since["requests"] == 4
    middle = json.loads(
        tollgate("costs", "--since", "2026-11-02T05:00", "--until", "2026-11-02T06:00", "--json").stdout
    )
    assert (middle["since_day"], middle["until_day"], middle["requests"]) == ("2026-11-02", "2026-11-03", 2)
    text = tollgate("costs").stdout
    assert "total $0.000024 over 6 requests" in text
    assert "0 cache reads, 0 cache writes of which 0 1-hour" in text and "0 reasoning" in text  # the parts
    with sqlite3.connect(tollgate.db) as db:  # an edited rollup is reported
        db.execute("update cost_rollups set cost_micro_usd = 1 where day = '2026-11-03'")
    edited = tollgate("costs", "--verify", "--json", check=False)
    assert edited.returncode == 1
    [diff] = json.loads(edited.stdout)["differences"]
    assert (diff["day"], diff["rollup"]["cost_micro_usd"], diff["audit"]["cost_micro_usd"]) == (
        "2026-11-03",
        1,
        8,
    )


def test_keys_create_makes_missing_pools_unlimited_and_keeps_existing_ones(tollgate) -> None:  # type: ignore[no-untyped-def]
    tollgate("budgets", "set", "--tenant", "acme", "--pool", "team", "--tokens", "500")
    args = ["--tenant", "acme", "--pool", "team", "--pools", "shared, extra", "--json"]
    created = json.loads(tollgate("keys", "create", *args).stdout)
    assert created["pools"] == ["shared", "extra"] and created["pools_created"] == ["shared", "extra"]
    rows = json.loads(tollgate("budgets", "show", "--tenant", "acme", "--json").stdout)
    assert {r["pool"]: r["capacity"] for r in rows} == {"team": 500, "shared": None, "extra": None}
    listed = json.loads(tollgate("keys", "list", "--tenant", "acme", "--json").stdout)
    assert listed[0]["pools"] == ["shared", "extra"]


def test_usd_budgets_for_a_pool_and_a_key(tollgate) -> None:  # type: ignore[no-untyped-def]
    args = ["--pool", "team", "--usd", "50", "--period", "monthly", "--timezone", "Europe/Berlin"]
    pool = json.loads(tollgate("budgets", "set", "--tenant", "acme", *args, "--alert-at", "80,50,100").stdout)
    assert pool["capacity"] is None and pool["alert_at"] == [50, 80, 100]  # the pool was created unlimited
    assert pool["usd_budget"]["limit"] == 50_000_000 and pool["usd_budget"]["period"] == "monthly"
    key_args = [
        "--tenant",
        "acme",
        "--pool",
        "team",
        "--budget-usd",
        "5",
        "--budget-period",
        "daily",
        "--json",
    ]
    key = json.loads(tollgate("keys", "create", *key_args).stdout)
    assert key["usd_budget"]["limit"] == 5_000_000 and key["usd_budget"]["timezone"] == "UTC"
    tollgate("budgets", "set", "--tenant", "acme", "--pool", "team", "--tokens", "900")  # the USD part stays
    rows = json.loads(tollgate("budgets", "show", "--json").stdout)
    shown = {(r["kind"], r["scope"], r["name"]): r for r in rows}
    assert set(shown) == {("tokens", "pool", "team"), ("usd", "pool", "team"), ("usd", "key", key["key_id"])}
    assert shown["tokens", "pool", "team"]["limit"] == 900
    monthly = shown["usd", "pool", "team"]
    assert (monthly["limit"], monthly["spent"], monthly["reserved"], monthly["remaining"]) == (
        50_000_000,
        0,
        0,
        50_000_000,
    )
    assert monthly["timezone"] == "Europe/Berlin" and monthly["resets_at"].endswith(":00:00.000000Z")
    assert monthly["alert_at"] == [50, 80, 100]
    daily = shown["usd", "key", key["key_id"]]
    assert daily["resets_at"].endswith("T00:00:00.000000Z") and daily["period"] == "daily"
    table = tollgate("budgets", "show", "--tenant", "acme").stdout
    assert "$50.000000" in table and "Europe/Berlin" in table and "50,80,100" in table
    moved = tollgate("budgets", "set", "--tenant", "acme", "--key", key["key_id"], "--usd", "7.5").stdout
    assert json.loads(moved)["usd_budget"]["limit"] == 7_500_000
    assert json.loads(moved)["usd_budget"]["period"] == "daily"  # what was not given stays


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["budgets", "set", "--tenant", "acme", "--usd", "-5"], "must be a USD amount >= 0"),
        (["budgets", "set", "--tenant", "acme", "--usd", "lots"], "expected a USD amount"),
        (["budgets", "set", "--tenant", "acme", "--usd", "0.0000001"], "at most 6 decimals"),
        (["budgets", "set", "--tenant", "acme", "--usd", "nan"], "USD amount"),
        (
            ["budgets", "set", "--tenant", "acme", "--usd", "5", "--period", "yearly"],
            "invalid choice: 'yearly'",
        ),
        (["budgets", "set", "--tenant", "acme", "--usd", "5", "--timezone", "Mars/Base"], "unknown timezone"),
        (["budgets", "set", "--tenant", "acme", "--alert-at", "50,x"], "whole percent"),
        (["budgets", "set", "--tenant", "acme"], "give --tokens, --usd"),
        (
            ["budgets", "set", "--tenant", "acme", "--key", "key_1", "--tokens", "5"],
            "a key's budget is in USD",
        ),
        (["keys", "create", "--tenant", "acme", "--budget-period", "daily"], "need --budget-usd"),
        (["keys", "create", "--tenant", "acme", "--budget-usd", "-1"], "must be a USD amount >= 0"),
    ],
)
def test_bad_budgets_exit_2_and_write_nothing(tollgate, argv: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    refused = tollgate(*argv, check=False)
    assert refused.returncode == 2 and needle in refused.stderr and refused.stdout == ""
    assert "Traceback" not in refused.stderr
    assert json.loads(tollgate("budgets", "show", "--json").stdout) == []
    assert json.loads(tollgate("keys", "list", "--json").stdout) == []
