"""Built-in tools of the agent loop: ``echo`` and ``utc`` always; ``cmd`` and ``bash`` only when enabled.

A tool never raises: a refused, unknown or failing call returns an error text, which the model reads as
the tool's result. ``cmd`` (an argv list, no shell) and ``bash`` (a script for ``bash -c``) run only when
``TOLLGATE_TOOL_EXEC_ENABLED=1`` and never on AWS Lambda, as an asyncio subprocess in its own process
group, with an environment holding nothing but ``PATH=/usr/bin:/bin`` (no credentials, no settings), in a
fresh scratch directory deleted afterwards, killed (the whole group) on timeout or when the output
passes the byte limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import Settings
from .schemas.openai import FunctionDefinition, Tool

EXEC_ENV = {"PATH": "/usr/bin:/bin"}
EXEC_TOOLS = frozenset({"cmd", "bash"})
BUILTIN_TOOLS = frozenset({"echo", "utc"}) | EXEC_TOOLS
_READ_SIZE = 4096
REAP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    exec_enabled: bool = False
    on_lambda: bool = False
    timeout_ms: int = 15000
    max_output_bytes: int = 65536

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolPolicy:
        return cls(
            exec_enabled=settings.tool_exec_enabled,
            on_lambda=bool(settings.lambda_function_name),
            timeout_ms=settings.tool_exec_timeout_ms,
            max_output_bytes=settings.tool_exec_max_output_bytes,
        )

    @property
    def exec_allowed(self) -> bool:
        return self.exec_enabled and not self.on_lambda

    def refusal(self) -> str | None:
        if self.on_lambda:
            return "refused: command execution is never allowed on AWS Lambda"
        if not self.exec_enabled:
            return "refused: command execution is disabled on this gateway (TOLLGATE_TOOL_EXEC_ENABLED)"
        return None


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Tool:
    parameters = {"type": "object", "properties": properties, "required": required}
    return Tool(function=FunctionDefinition(name=name, description=description, parameters=parameters))


def definitions(policy: ToolPolicy) -> list[Tool]:
    """The built-in tools offered to the model (``cmd``/``bash`` only where they may run)."""
    tools = [
        _tool("echo", "Returns its text argument unchanged.", {"text": {"type": "string"}}, ["text"]),
        _tool("utc", "Returns the current UTC time (ISO 8601).", {}, []),
    ]
    if policy.exec_allowed:
        argv = {"type": "array", "items": {"type": "string"}, "description": "program and arguments"}
        tools.append(
            _tool(
                "cmd",
                "Runs a program (argv list, no shell); returns exit code and output.",
                {"argv": argv},
                ["argv"],
            )
        )
        tools.append(
            _tool(
                "bash",
                "Runs a bash script; returns exit code and output.",
                {"script": {"type": "string"}},
                ["script"],
            )
        )
    return tools


async def run_tool(name: str, arguments: str, policy: ToolPolicy) -> str:
    """Execute one built-in tool call; every failure becomes the result text."""
    try:
        args = json.loads(arguments) if arguments.strip() else {}
        if not isinstance(args, dict):
            return "error: tool arguments must be a JSON object"
        return await _dispatch(name, args, policy)
    except json.JSONDecodeError as exc:
        return f"error: tool arguments are not valid JSON: {exc}"
    except Exception as exc:  # a tool must never take the loop down
        return f"error: {name} failed: {type(exc).__name__}: {exc}"


async def _dispatch(name: str, args: dict[str, Any], policy: ToolPolicy) -> str:
    if name == "echo":
        return str(args.get("text", ""))
    if name == "utc":
        return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if name not in EXEC_TOOLS:
        return f"error: unknown tool {name!r}"
    refusal = policy.refusal()
    if refusal is not None:
        return refusal
    if name == "cmd":
        argv = args.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            return "error: cmd needs `argv`, a non-empty list of strings"
        return await run_process(argv, policy)
    script = args.get("script")
    if not isinstance(script, str):
        return "error: bash needs `script`, a string"
    return await run_process(["/bin/bash", "--noprofile", "--norc", "-c", script], policy)


async def run_process(argv: list[str], policy: ToolPolicy) -> str:
    """Run argv (no shell) in a scratch directory with the minimal environment; bounded in time and output."""
    with tempfile.TemporaryDirectory(prefix="tollgate-tool-") as scratch:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=scratch,
                env=dict(EXEC_ENV),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
        except OSError as exc:
            return f"error: cannot run {argv[0]!r}: {exc.strerror or exc}"
        try:
            output, truncated = await asyncio.wait_for(
                _read_bounded(process, policy.max_output_bytes), policy.timeout_ms / 1000
            )
        except TimeoutError:
            await _kill(process)
            return f"error: timed out after {policy.timeout_ms} ms; the process was killed"
        if truncated:
            await _kill(process)
        code = await _reaped(process)
    return _result(code, output, truncated, policy.max_output_bytes)


async def _read_bounded(process: asyncio.subprocess.Process, limit: int) -> tuple[bytes, bool]:
    """Read stdout+stderr until EOF or until the output passes ``limit`` bytes."""
    assert process.stdout is not None
    buffer = bytearray()
    while len(buffer) <= limit:
        data = await process.stdout.read(_READ_SIZE)
        if not data:
            return bytes(buffer), False
        buffer += data
    return bytes(buffer[:limit]), True


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the process group, then read its pipe to EOF so the transport closes now (not at GC time,
    possibly after its event loop is gone), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if process.stdout is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.stdout.read(), REAP_TIMEOUT_SECONDS)
    await _reaped(process)


async def _reaped(process: asyncio.subprocess.Process) -> int:
    """The exit code, waited for a bounded time: a lost child-exit notification must never hang a request
    (seen once in CI as a test stuck in the event loop); -1 when it did not arrive."""
    try:
        return await asyncio.wait_for(process.wait(), REAP_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode if process.returncode is not None else -1


def _result(code: int, output: bytes, truncated: bool, limit: int) -> str:
    text = output.decode("utf-8", errors="replace")
    status = "killed" if truncated else f"exit code {code}"
    note = f"\n[output truncated at {limit} bytes]" if truncated else ""
    return f"{status}\n{text}{note}"
