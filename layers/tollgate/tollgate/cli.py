"""The ``tollgate`` command: serve, store init, keys, budgets, audit, costs, loop."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from .cli_args import Parser, count_type
from .config import Settings
from .config_errors import SettingsError, describe_settings_error, is_settings_error
from .engine.routes import ConfigError
from .errors import NotFound
from .names import printable

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
    from .serve_http import bounded_protocol

    settings = Settings()
    app = create_app(
        settings, allow_open=True, include_admin=True, run_sweeper=True
    )  # a bad routing config stops here
    print(_serve_banner(args, settings, has_keys), file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http=bounded_protocol(settings),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def _serve_banner(args: argparse.Namespace, settings: Settings, has_keys: bool) -> str:
    """What ``serve`` always says: the address, the store and the mode."""
    store = (
        f"dynamodb table {settings.table}"
        if settings.store == "dynamodb"
        else f"sqlite {settings.sqlite_path}"
    )
    line = f"tollgate: serving http://{args.host}:{args.port} (admin API at /admin) - store: {store} - "
    if has_keys:
        return line + f"mode: keys required - default provider: {settings.default_provider}"
    return line + (
        "mode: OPEN MODE - no API keys exist, every local caller is served as tenant 'local' until the first "
        "key is created (tollgate keys create --tenant T). "
        f"Default provider: {settings.default_provider}."
    )


def _store_init(args: argparse.Namespace) -> int:
    async def init(store: Any, settings: Settings) -> str:
        await store.init_schema()
        return settings.table if settings.store == "dynamodb" else settings.sqlite_path

    where = _with_store(init)
    print(f"tollgate: store ready ({Settings().store}: {where})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_admin import add_admin_commands
    from .cli_limits import add_limit_commands
    from .cli_loop import add_loop_command

    parser = Parser(prog="tollgate", description="OpenAI-compatible LLM gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (and /admin) under uvicorn")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need an API key)"
    )
    serve.add_argument("--port", type=count_type(0), default=8081, help="port to bind (default 8081)")
    serve.set_defaults(handler=_serve)
    store = commands.add_parser("store", help="the state store").add_subparsers(dest="action", required=True)
    store.add_parser("init", help="create the SQLite schema or the DynamoDB table").set_defaults(
        handler=_store_init
    )
    add_admin_commands(commands)
    add_limit_commands(commands)
    add_loop_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except KeyboardInterrupt:
        return 130
    except (SettingsError, ConfigError) as exc:
        print(f"tollgate: {exc}", file=sys.stderr)
        return 2
    except NotFound as exc:  # an unknown tenant, key, ... named on the command line
        print(f"tollgate: {printable(exc.message)}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if not is_settings_error(exc):
            raise
        print(f"tollgate: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _stdout_closed() -> int:
    """The reader of our stdout went away (``tollgate costs | head``): no traceback, and none at exit
    either (Python flushes stdout once more); 141 = 128 + SIGPIPE, as a shell reports it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
