"""``tollgate limits set | show | clear`` on a SQLite file: bad numbers and unknown tenants or keys are one
line on stderr and exit 2 with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tollgate.cli import main


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(path))
    return path


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def key_id(capsys: pytest.CaptureFixture[str], tenant: str) -> str:
    assert run(["keys", "create", "--tenant", tenant, "--json"]) == 0
    return str(json.loads(capsys.readouterr().out)["key_id"])


def shown(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert run(["limits", "show", "--json"]) == 0
    return list(json.loads(capsys.readouterr().out))


def test_set_show_clear(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kid = key_id(capsys, "acme")
    assert run(["limits", "set", "--tenant", "acme", "--rpm", "60", "--tpm", "100000"]) == 0
    assert run(["limits", "set", "--tenant", "acme", "--key", kid, "--rpm", "20"]) == 0
    capsys.readouterr()
    assert shown(capsys) == [
        {"tenant": "acme", "key_id": None, "rpm": 60, "tpm": 100000},
        {"tenant": "acme", "key_id": kid, "rpm": 20, "tpm": None},
    ]
    assert run(["limits", "show", "--tenant", "acme"]) == 0
    table = capsys.readouterr().out
    assert f"key {kid}" in table and "100000" in table
    assert run(["limits", "clear", "--tenant", "acme", "--key", kid]) == 0
    assert run(["limits", "clear", "--tenant", "acme", "--key", kid]) == 2
    assert "no rate limit for key" in capsys.readouterr().err
    assert shown(capsys) == [{"tenant": "acme", "key_id": None, "rpm": 60, "tpm": 100000}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rpm", "-5"], "must be >= 1"),
        (["--rpm", "0"], "must be >= 1"),
        (["--tpm", "lots"], "expected an integer"),
        (["--rpm", "1.5"], "expected an integer"),
        ([], "give --rpm, --tpm or both"),
        (["--tenant", "nobody", "--rpm", "5"], "no tenant 'nobody'"),
        (["--key", "key_00000000", "--rpm", "5"], "has no key 'key_00000000'"),
        (["--key", "../etc", "--rpm", "5"], "key_id"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    key_id(capsys, "acme")
    tenant = [] if "--tenant" in args else ["--tenant", "acme"]
    assert run(["limits", "set", *tenant, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert shown(capsys) == []
