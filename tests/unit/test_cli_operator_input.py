"""Operator input the CLI must refuse with one line and exit 2, writing nothing: listings of a tenant
that does not exist (a typo is not "no keys"), key names and allow-lists the admin API would refuse
(control characters, over-long), as the admin API refuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_cli_unknown_ids import dump, run


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "cli.db"
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(path))
    return path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "list", "--tenant", "nobody"], "no tenant 'nobody'"),
        (["keys", "list", "--tenant", "nobody", "--json"], "no tenant 'nobody'"),
        (["budgets", "show", "--tenant", "nobody"], "no tenant 'nobody'"),
        (["limits", "show", "--tenant", "nobody", "--json"], "no tenant 'nobody'"),
        (["keys", "create", "--tenant", "acme", "--name", "a\x1b[31mred"], "--name"),
        (["keys", "create", "--tenant", "acme", "--name", "line\nbreak"], "--name"),
        (["keys", "create", "--tenant", "acme", "--name", "x" * 201], "--name"),
        (["keys", "create", "--tenant", "acme", "--models", "gpt-4o,a\rb"], "--models"),
        (["keys", "create", "--tenant", "acme", "--models", "m" * 513], "--models"),
        (["keys", "create", "--tenant", "acme", "--models", ",".join(["m"] * 257)], "--models"),
    ],
)
def test_bad_operator_input_is_exit_2_and_writes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(["keys", "create", "--tenant", "acme"]) == 0
    capsys.readouterr()
    before = dump(db)
    assert run(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.out == ""
    assert "\x1b" not in captured.err and "\r" not in captured.err
    assert dump(db) == before


def test_names_and_listings_the_api_takes_still_work(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keys", "create", "--tenant", "acme", "--name", "ci — nightly é", "--models", "openai/*,gpt-4o"]
    assert run([*argv, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["name"] == "ci — nightly é" and created["models"] == ["openai/*", "gpt-4o"]
    assert run(["budgets", "set", "--tenant", "team", "--tokens", "5"]) == 0  # a tenant with a pool only
    capsys.readouterr()
    assert run(["keys", "list", "--tenant", "team", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    for argv in (["budgets", "show", "--tenant", "acme"], ["limits", "show", "--tenant", "acme"]):
        assert run(argv) == 0
