"""Every admin command that names a tenant or a key that does not exist answers the same way as
``tollgate limits``: one clear line on stderr, exit 2, nothing written (exit 1 stays "the check found a
problem": a broken audit chain, rollups that differ)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tollgate.cli import main


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(path))
    monkeypatch.setenv("TOLLGATE_AUDIT_HMAC_KEY", "k" * 32)
    return path


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def dump(db: Path) -> list[tuple[object, ...]]:
    """Every row of every table: what "nothing written" is checked against."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = [(t, *row) for t in sorted(tables) for row in conn.execute(f"SELECT * FROM {t}")]
    conn.close()
    return sorted(rows, key=repr)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["budgets", "set", "--tenant", "acme", "--key", "key_00000000", "--usd", "5"], "has no key"),
        (["budgets", "set", "--tenant", "beta", "--key", "{acme_key}", "--usd", "5"], "has no key"),
        (["keys", "revoke", "key_00000000"], "no key 'key_00000000'"),
        (["keys", "rotate", "key_00000000"], "key_00000000"),
        (["limits", "set", "--tenant", "nobody", "--rpm", "5"], "no tenant 'nobody'"),
        (["audit", "verify", "--tenant", "nobody"], "no audit entries for tenant 'nobody'"),
        (["audit", "export", "--tenant", "nobody"], "no tenant 'nobody'"),
        (["costs", "--tenant", "nobody"], "no tenant 'nobody'"),
        (["costs", "--verify", "--tenant", "nobody"], "no tenant 'nobody'"),
    ],
)
def test_an_unknown_id_is_exit_2_with_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(["keys", "create", "--tenant", "acme", "--json"]) == 0
    acme_key = json.loads(capsys.readouterr().out)["key_id"]
    assert run(["keys", "create", "--tenant", "beta"]) == 0  # beta exists, but acme's key is not its
    capsys.readouterr()
    before = dump(db)
    assert run([a.replace("{acme_key}", acme_key) for a in argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert dump(db) == before


def test_known_ids_still_work(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same commands on ids that exist: a tenant with keys but no requests yet has $0 of costs."""
    assert run(["keys", "create", "--tenant", "acme", "--json"]) == 0
    acme_key = json.loads(capsys.readouterr().out)["key_id"]
    assert run(["budgets", "set", "--tenant", "acme", "--key", acme_key, "--usd", "5"]) == 0
    assert run(["costs", "--tenant", "acme", "--json"]) == 0
    capsys.readouterr()
    assert run(["audit", "export", "--tenant", "acme"]) == 0
    assert run(["keys", "revoke", acme_key]) == 0
