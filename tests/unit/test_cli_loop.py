"""`tollgate loop`: the loop engine from the terminal against a fake upstream, configured by --env-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tollgate.cli import main
from tollgate.cli_loop import load_env_file

ENV_KEYS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TOLLGATE_DEFAULT_PROVIDER", "TOLLGATE_TOOL_EXEC_ENABLED")


@pytest.fixture
def env_file(tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ENV_KEYS:  # the CLI writes os.environ; monkeypatch removes what it sets after the test
        monkeypatch.setenv(key, "placeholder")
        monkeypatch.delenv(key)
    path = tmp_path / "loop.env"
    path.write_text(
        "# provider for the loop\n\n"
        'export OPENAI_API_KEY="sk-very-secret-value"\n'
        f"OPENAI_BASE_URL={fake_openai.url}/v1\n"
        "TOLLGATE_DEFAULT_PROVIDER='openai'\n"
    )
    return path


def test_load_env_file(env_file: Path) -> None:
    import os

    assert load_env_file(str(env_file)) == 3
    assert os.environ["OPENAI_API_KEY"] == "sk-very-secret-value"
    assert os.environ["TOLLGATE_DEFAULT_PROVIDER"] == "openai"


def test_loop_prints_each_turn_and_the_stop_reason(
    env_file: Path, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.enqueue(
        Script(texts=["working"]), Script(texts=["still ", "working"]), Script(texts=["all DONE"])
    )
    assert main(["loop", "--prompt", "build it", "--env-file", str(env_file)]) == 0
    out = capsys.readouterr()
    assert "working\n[turn 2]\nstill working\n[turn 3]\nall DONE" in out.out
    assert "[stop_reason: marker, turns: 3]" in out.out
    assert "sk-very-secret-value" not in out.out + out.err
    _, headers, body = fake_openai.requests[0]
    assert headers["authorization"] == "Bearer sk-very-secret-value" and body["stream"] is True
    assert body["messages"] == [{"role": "user", "content": "build it"}]


def test_loop_options(env_file: Path, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    fake_openai.enqueue(
        Script(texts=[], tool_calls=[{"id": "c1", "name": "echo", "arguments": ['{"text": "hey"}']}])
    )
    argv = ["loop", "--prompt", "p", "--env-file", str(env_file), "--provider", "openai", "--model", "gpt-x"]
    assert main([*argv, "--loop-mode", "agent", "--until", "FIN", "--max-turns", "2"]) == 0
    out = capsys.readouterr().out
    assert "[tool echo -> hey]" in out and "[stop_reason: max_turns, turns: 2]" in out
    assert fake_openai.requests[0][2]["model"] == "gpt-x"
    assert fake_openai.requests[1][2]["messages"][-1]["content"] == "hey"


def test_loop_errors(env_file: Path, fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    fake_openai.enqueue(Script(status=500))
    assert main(["loop", "--prompt", "p", "--env-file", str(env_file)]) == 1
    assert "error" in capsys.readouterr().err
    assert main(["loop", "--prompt", "p", "--env-file", str(env_file), "--max-turns", "99"]) == 1
    assert main(["loop", "--prompt", "p", "--env-file", "/no/such/file"]) == 2
