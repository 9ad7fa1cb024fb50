"""The CLI for operators: help on every option, names and numbers checked where they are parsed (one
line, exit 2), relative ``--since``, settings errors as one line, escaped tenant-chosen text, a closed
stdout without a traceback, ``audit verify`` of an unknown tenant, refused requests counted apart."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tollgate import audit, rollups
from tollgate.cli import _serve_banner, build_parser, main
from tollgate.cli_args import since_time
from tollgate.config import Settings
from tollgate.config_errors import SettingsError
from tollgate.store.audit_base import AuditEntry
from tollgate.store.sqlite import SQLiteStore
from tollgate.timeutil import parse_time

ENTRY = AuditEntry(
    "acme", 0, "2026-11-01T00:00:00.000000Z", "r0", "key_1", "openai", "gpt-4o-mini", "ok",
    10, 5, 4, "a" * 64, "b" * 64, "", "",
)  # fmt: skip


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(path))
    return path


def _append(db: Path, *entries: AuditEntry) -> None:
    async def run() -> None:
        store = SQLiteStore(str(db))
        await store.init_schema()
        for n, entry in enumerate(entries):  # what the ledger writes: the entry and its cost rollup
            written = await audit.append(store, replace(entry, request_id=f"r{n}"), None)
            await store.add_rollup(rollups.change_of(written))
        await store.aclose()

    asyncio.run(run())


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def _walk(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _walk(sub)
        elif not isinstance(action, argparse._HelpAction):
            found.append((parser.prog, action))
    return found


def test_every_option_has_help() -> None:
    actions = _walk(build_parser())
    assert len(actions) > 25
    missing = [f"{prog} {action.dest}" for prog, action in actions if not action.help]
    assert missing == []


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["keys", "create", "--tenant", ""], "tenant must not be empty"),
        (["keys", "create", "--tenant", "ac\nme"], "argument --tenant: tenant must be 1-64 characters"),
        (["keys", "create", "--tenant", "acme", "--pool", "a b"], "argument --pool: pool must be"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "-10"], "must be >= 1, got -10"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "0"], "--expires-in: must be >= 1, got 0"),
        (["keys", "create", "--tenant", "acme", "--expires-in", "99999999999999"], "must be <= 3153600000"),
        (["keys", "create", "--tenant", "acme", "--pools", "ok,a b"], "argument --pools: pool must be"),
        (["keys", "revoke", "key;drop"], "argument key_id: key_id must be"),
        (["budgets", "set", "--tenant", "acme", "--tokens", "-5"], "--tokens: must be >= 0, got -5"),
        (["budgets", "set", "--tenant", "acme", "--tokens", "many"], "expected an integer, got 'many'"),
        (["budgets", "set", "--tenant", "acme", "--tokens", str(10**16)], "must be <= 1000000000000000"),
        (["budgets", "show", "--tenant", "x" * 65], "tenant must be 1-64"),
        (["costs", "--tenant", "\x1b[31mred"], "got '\\x1b[31mred'"),
        (["budgets", "sweep", "--older-than", "100000000000"], "--older-than: must be <= 3153600000"),
        (["budgets", "sweep", "--older-than", "99999999999999999999999"], "must be <= 3153600000"),
        (["budgets", "sweep", "--older-than", "soon"], "--older-than: expected an integer, got 'soon'"),
        (["costs", "--since", "last week"], "expected an ISO date/time"),
        (["costs", "--until", "0001-01-01T00:00:00+23:59"], "expected an ISO date/time"),
        (["costs", "--verify", "--since", "9999-12-31T23:59:59-23:59"], "expected an ISO date/time"),
        (["audit", "verify", "--tenant", "a/b"], "tenant must be"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "\x1b" not in err, err
    assert err.startswith("tollgate ") and "--help)" in err
    assert not db.exists()  # refused before the store was opened


def test_since_forms() -> None:
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert parse_time(since_time("today")) == midnight
    assert parse_time(since_time("Yesterday")) == midnight - timedelta(days=1)
    assert abs(parse_time(since_time("7d")) - (now - timedelta(days=7))) < timedelta(seconds=5)
    assert abs(parse_time(since_time("24h")) - (now - timedelta(hours=24))) < timedelta(seconds=5)
    assert abs(parse_time(since_time("30m")) - (now - timedelta(minutes=30))) < timedelta(seconds=5)
    assert since_time("2026-11-01") == "2026-11-01T00:00:00.000000Z"
    assert since_time("2026-11-01T12:00:00+02:00") == "2026-11-01T10:00:00.000000Z"
    for bad in ("last week", "7y", "999999d", "", "-1d"):
        with pytest.raises(argparse.ArgumentTypeError):
            since_time(bad)


def test_costs_since_yesterday_and_refused_requests(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(UTC).strftime("%Y-%m-%dT01:00:00.000000Z")
    refused = replace(ENTRY, at=today, status="budget_exceeded", prompt_tokens=0, completion_tokens=0)
    _append(db, replace(ENTRY, at=today), refused, ENTRY)  # ENTRY itself is from 2026-11-01
    assert main(["costs", "--since", "yesterday"]) == 0
    assert "total $0.000004 over 1 requests (0 unpriced, 1 refused)" in capsys.readouterr().out
    assert main(["costs"]) == 0
    assert "over 2 requests (0 unpriced, 1 refused)" in capsys.readouterr().out


def test_costs_over_years_below_1000(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by a hostile review: ``--until 0001-01-01`` ended in a traceback (the year lost its zeros)."""
    _append(db, ENTRY)
    assert since_time("0500-01-01") == "0500-01-01T00:00:00.000000Z"
    assert main(["costs", "--until", "0001-01-01"]) == 0
    assert "total $0.000000 over 0 requests" in capsys.readouterr().out
    assert main(["costs", "--since", "0500-01-01", "--until", "0600-01-01T12:00:00Z", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["since_day"], report["until_day"], report["requests"]) == ("0500-01-01", "0600-01-02", 0)
    assert main(["costs", "--verify", "--until", "0001-01-01"]) == 0
    assert "cost rollups match the audit entries: 0 rows, days start .. 0001-01-01" in capsys.readouterr().out


def test_tenant_chosen_text_is_escaped(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _append(db, replace(ENTRY, model="evil\x1b[2J\x07", provider="openai\r"))
    assert main(["keys", "create", "--tenant", "acme", "--name", "label"]) == 0
    capsys.readouterr()
    # names are refused with control characters now; one stored before that is still printed escaped
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE keys SET name = ?", ("\x1b]0;pwned\x07label",))
    conn.close()
    assert main(["costs", "--by", "model"]) == 0
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "openai\\r/evil\\x1b[2J\\x07" in out and "\\x1b]0;pwned\\x07label" in out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out


def test_audit_verify_of_an_unknown_tenant_is_not_ok(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _append(db, ENTRY)
    assert main(["audit", "verify", "--tenant", "typo"]) == 2  # a wrong argument, not a broken chain (1)
    captured = capsys.readouterr()
    assert captured.err == "tollgate: no audit entries for tenant 'typo'\n" and "ok" not in captured.out
    assert main(["audit", "verify", "--tenant", "acme"]) == 0
    assert "acme: ok, 1 entries" in capsys.readouterr().out


def test_an_invalid_setting_is_one_line(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOLLGATE_DEFAULT_MAX_TOKENS", "0")
    assert main(["keys", "list"]) == 2
    line = "tollgate: invalid setting TOLLGATE_DEFAULT_MAX_TOKENS=0: must be >= 1\n"
    assert capsys.readouterr().err == line
    monkeypatch.setenv("TOLLGATE_DEFAULT_MAX_TOKENS", "1")
    monkeypatch.setenv("TOLLGATE_STORE", "mongo")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert main(["costs"]) == 2
    err = capsys.readouterr().err
    assert err == "tollgate: invalid setting TOLLGATE_STORE=mongo: must be 'sqlite' or 'dynamodb'\n"


def test_a_reservation_max_age_past_the_usd_counters_expiry_is_refused(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A USD budget's period counter expires 7 days after its period: a hold must be swept well before."""
    monkeypatch.setenv("TOLLGATE_RESERVATION_MAX_AGE_SECONDS", "259201")
    assert main(["keys", "list"]) == 2
    line = "tollgate: invalid setting TOLLGATE_RESERVATION_MAX_AGE_SECONDS=259201: must be <= 259200\n"
    assert capsys.readouterr().err == line


def test_an_invalid_setting_at_app_start_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from tollgate.app import create_app

    monkeypatch.setenv("TOLLGATE_HEADER_TIMEOUT_SECONDS", "-1")
    with pytest.raises(SettingsError) as raised:
        create_app()
    assert str(raised.value) == "invalid setting TOLLGATE_HEADER_TIMEOUT_SECONDS=-1: must be > 0"


def test_a_secret_setting_is_never_shown() -> None:
    from pydantic import ValidationError

    from tollgate.config_errors import describe_settings_error

    with pytest.raises(ValidationError) as raised:
        Settings(openai_api_key=["sk-live-secret"], default_max_tokens=0)  # type: ignore[arg-type]
    line = describe_settings_error(raised.value)
    assert "OPENAI_API_KEY=***" in line and "sk-live" not in line
    assert "TOLLGATE_DEFAULT_MAX_TOKENS=0: must be >= 1" in line


def test_a_closed_stdout_is_quiet(db: Path) -> None:
    _append(db, ENTRY)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "audit", "export"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written (tollgate ... | head -0)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 141
    assert stderr == ""


def test_serve_banner_names_address_store_and_mode() -> None:
    args = argparse.Namespace(host="127.0.0.1", port=9000)
    with_keys = _serve_banner(args, Settings(sqlite_path="/tmp/x.db"), has_keys=True)
    assert with_keys.startswith("tollgate: serving http://127.0.0.1:9000")
    assert "store: sqlite /tmp/x.db" in with_keys and "mode: keys required" in with_keys
    dynamo = _serve_banner(args, Settings(store="dynamodb", table="tg"), has_keys=False)
    assert "store: dynamodb table tg" in dynamo and "OPEN MODE" in dynamo
