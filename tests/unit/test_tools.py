"""Built-in tools: echo/utc always; cmd/bash only when enabled, never on Lambda, bounded and isolated."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tollgate.config import Settings
from tollgate.tools import ToolPolicy, definitions, run_tool

ENABLED = ToolPolicy(exec_enabled=True)


def names(policy: ToolPolicy) -> set[str]:
    return {t.function.name for t in definitions(policy)}


def cmd(*argv: str) -> str:
    return json.dumps({"argv": list(argv)})


def test_policy_from_settings_and_offered_tools() -> None:
    assert names(ToolPolicy.from_settings(Settings())) == {"echo", "utc"}
    assert names(ToolPolicy.from_settings(Settings(tool_exec_enabled=True))) == {"echo", "utc", "cmd", "bash"}
    on_lambda = Settings(tool_exec_enabled=True, lambda_function_name="fn")
    assert names(ToolPolicy.from_settings(on_lambda)) == {"echo", "utc"}
    policy = ToolPolicy.from_settings(Settings())
    assert policy.timeout_ms == 15000 and policy.max_output_bytes == 65536


def test_lambda_is_detected_from_the_runtime_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tollgate-chat")
    monkeypatch.setenv("TOLLGATE_TOOL_EXEC_ENABLED", "1")
    policy = ToolPolicy.from_settings(Settings())
    assert policy.on_lambda and not policy.exec_allowed


async def test_echo_and_utc() -> None:
    assert await run_tool("echo", '{"text": "ping"}', ToolPolicy()) == "ping"
    stamp = await run_tool("utc", "", ToolPolicy())
    assert stamp.endswith("Z") and abs(time.time() - _epoch(stamp)) < 5


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_errors_are_results_never_exceptions() -> None:
    assert (await run_tool("nope", "{}", ToolPolicy())).startswith("error: unknown tool")
    assert "not valid JSON" in await run_tool("echo", "{", ToolPolicy())
    assert "JSON object" in await run_tool("echo", "[1]", ToolPolicy())
    assert "argv" in await run_tool("cmd", '{"argv": "ls"}', ENABLED)
    assert "cannot run" in await run_tool("cmd", cmd("/no/such/program"), ENABLED)


async def test_exec_refused_unless_enabled_and_always_on_lambda() -> None:
    assert (await run_tool("cmd", cmd("/bin/echo", "hi"), ToolPolicy())).startswith("refused")
    assert (await run_tool("bash", '{"script": "echo hi"}', ToolPolicy())).startswith("refused")
    on_lambda = ToolPolicy(exec_enabled=True, on_lambda=True)
    assert "Lambda" in await run_tool("cmd", cmd("/bin/echo", "hi"), on_lambda)


async def test_cmd_runs_argv_without_shell_in_an_empty_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_SECRET_CANARY", "do-not-leak")
    assert await run_tool("cmd", cmd("/bin/echo", "hi"), ENABLED) == "exit code 0\nhi\n"
    assert await run_tool("cmd", cmd("/bin/echo", "$HOME", ";", "id"), ENABLED) == "exit code 0\n$HOME ; id\n"
    assert await run_tool("cmd", cmd("/usr/bin/env"), ENABLED) == "exit code 0\nPATH=/usr/bin:/bin\n"
    assert (await run_tool("cmd", cmd("/bin/sh", "-c", "exit 3"), ENABLED)).startswith("exit code 3")


async def test_scratch_directory_is_fresh_and_deleted() -> None:
    result = await run_tool("bash", '{"script": "pwd; ls -A | wc -l; touch made"}', ENABLED)
    _, cwd, count, _ = result.split("\n")
    assert cwd != os.getcwd() and "tollgate-tool-" in cwd and count.strip() == "0"
    assert not Path(cwd).exists()


async def test_timeout_kills_the_process_group() -> None:
    policy = ToolPolicy(exec_enabled=True, timeout_ms=200)
    started = time.monotonic()
    result = await run_tool("cmd", cmd("sleep", "5"), policy)
    assert "timed out after 200 ms" in result and time.monotonic() - started < 2
    started = time.monotonic()
    result = await run_tool("bash", '{"script": "sleep 5 & sleep 5; wait"}', policy)  # children too
    assert "timed out" in result and time.monotonic() - started < 2


async def test_long_output_is_truncated_and_says_so() -> None:
    policy = ToolPolicy(exec_enabled=True, max_output_bytes=100)
    result = await run_tool("bash", '{"script": "yes tollgate | head -c 100000"}', policy)
    body = result.split("\n", 1)[1]
    assert body.endswith("[output truncated at 100 bytes]")
    assert len(body.removesuffix("\n[output truncated at 100 bytes]").encode()) == 100
    endless = await run_tool("cmd", cmd("yes"), policy)  # never ends by itself: killed at the limit
    assert "truncated" in endless
