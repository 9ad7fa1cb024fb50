"""``tollgate loop``: the agent loop from the terminal, in-process against the configured providers.

No HTTP server and no store: nothing is budgeted or audited (it is the operator's own terminal, with the
operator's own provider keys). The same ``LoopEngine`` as the gateway, so the same turns and stop reasons.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import TollgateError
from .loop import DEFAULT_MARKER, DirectTurns, LoopEngine, LoopSpec, TurnEnd
from .providers.base import TextDelta, ToolCallDelta


def add_loop_command(commands: Any) -> None:
    loop = commands.add_parser("loop", help="run the agent loop against a provider, printing each turn")
    loop.add_argument("--prompt", required=True, help="the task, sent as the first user message")
    loop.add_argument("--provider", default=None, help="provider (default TOLLGATE_DEFAULT_PROVIDER)")
    loop.add_argument("--model", default=None, help="model (default: the provider's configured model)")
    loop.add_argument("--until", default=DEFAULT_MARKER, help="the completion marker (default DONE)")
    loop.add_argument("--max-turns", type=int, default=None, help="default 8, capped by the settings")
    loop.add_argument(
        "--loop-mode", choices=("basic", "agent"), default="basic", help="basic or agent (default basic)"
    )
    loop.add_argument("--env-file", default=None, help="KEY=VALUE lines loaded before the settings")
    loop.set_defaults(handler=run_loop_command)


def load_env_file(path: str) -> int:
    """Load KEY=VALUE lines (``export`` prefix, quotes, comments and blank lines allowed) into the
    environment; returns how many were set. Values are never printed."""
    count = 0
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        os.environ[key.strip()] = value
        count += 1
    return count


def run_loop_command(args: argparse.Namespace) -> int:
    if args.env_file:
        try:
            load_env_file(args.env_file)
        except OSError as exc:
            print(f"tollgate loop: cannot read {args.env_file}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_run(args, Settings()))
    except TollgateError as exc:
        print(f"\ntollgate loop: error: {exc.message}", file=sys.stderr)
        return 1


def _request(args: argparse.Namespace) -> Any:
    from .api.body import validate
    from .schemas.openai import ChatCompletionRequest

    body: dict[str, Any] = {"prompt": args.prompt, "stream": True, "loop_mode": args.loop_mode}
    body |= {"loop_until": args.until, "model": args.model, "provider": args.provider}
    if args.max_turns is not None:
        body["loop_max_turns"] = args.max_turns
    return validate(ChatCompletionRequest, body)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from .app import http_client
    from .engine.prepare import without_tools
    from .engine.route import Router
    from .providers.registry import build_providers
    from .tools import ToolPolicy

    chat = _request(args)
    chat = chat if settings.tool_calling else without_tools(chat)
    spec = LoopSpec.from_request(chat, settings.loop_max_turns_cap)
    assert spec is not None
    router = Router(settings)
    call = router.call(router.route(chat).candidates()[0], chat, uuid.uuid4().hex)
    async with http_client(settings) as client:
        providers = build_providers(settings, client)
        try:
            engine = LoopEngine(
                spec,
                call,
                DirectTurns(providers[call.provider]),
                ToolPolicy.from_settings(settings),
                tool_calling=settings.tool_calling,
            )
            await _print_events(engine)
        finally:
            for provider in providers.values():
                await provider.aclose()
    result = engine.result
    print(f"[stop_reason: {result.stop_reason}, turns: {result.turns}]", flush=True)
    return 0


async def _print_events(engine: LoopEngine) -> None:
    print("[turn 1]", flush=True)
    async for event in engine.events():
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, ToolCallDelta) and event.name:
            print(f"\n[tool call: {event.name}]", end="", flush=True)
        elif isinstance(event, TurnEnd):
            print(flush=True)
            for name, text in event.tool_results:
                print(f"[tool {name} -> {text.strip()[:200]}]", flush=True)
            if event.error is not None:
                print(f"[error: {event.error.message}]", flush=True)
            if event.stop_reason is None:
                print(f"[turn {event.turn + 1}]", flush=True)
