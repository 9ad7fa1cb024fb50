"""The ``tollgate`` command: serve, store init, keys, budgets, audit, costs, loop."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .config import Settings

T = TypeVar("T")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_store(work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    """Run one async store operation from the command line, closing the store after."""
    from .store.factory import open_store

    settings = Settings()

    async def run() -> T:
        store = open_store(settings)
        try:
            if settings.store == "sqlite":
                await store.init_schema()
            return await work(store, settings)
        finally:
            await store.aclose()

    return asyncio.run(run())


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _serve(args: argparse.Namespace) -> int:
    async def keys_exist(store: Any, _: Settings) -> bool:
        return bool(await store.any_keys())

    has_keys = _with_store(keys_exist)
    if not has_keys and not is_loopback(args.host):
        print(
            f"tollgate: refusing to bind {args.host}: no API keys exist, so tollgate would serve openly. "
            "Create a key first (tollgate keys create --tenant T) or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from .app import create_app

    settings = Settings()
    if not has_keys:
        print(
            f"tollgate: OPEN MODE on http://{args.host}:{args.port} - no API keys exist, every local caller "
            "is served as tenant 'local' until the first key is created (tollgate keys create --tenant T). "
            f"Default provider: {settings.default_provider}.",
            file=sys.stderr,
        )
    app = create_app(settings, allow_open=True, include_admin=True, run_sweeper=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _store_init(args: argparse.Namespace) -> int:
    async def init(store: Any, settings: Settings) -> str:
        await store.init_schema()
        return settings.table if settings.store == "dynamodb" else settings.sqlite_path

    where = _with_store(init)
    print(f"tollgate: store ready ({Settings().store}: {where})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_admin import add_admin_commands
    from .cli_loop import add_loop_command

    parser = argparse.ArgumentParser(prog="tollgate", description="OpenAI-compatible LLM gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (and /admin) under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.set_defaults(handler=_serve)
    store = commands.add_parser("store", help="the state store").add_subparsers(dest="action", required=True)
    store.add_parser("init", help="create the SQLite schema or the DynamoDB table").set_defaults(
        handler=_store_init
    )
    add_admin_commands(commands)
    add_loop_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
