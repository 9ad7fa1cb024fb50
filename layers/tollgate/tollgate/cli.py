"""The ``tollgate`` command: serve (more subcommands arrive with the store)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(
            f"tollgate: refusing to bind {args.host}: without API keys tollgate serves openly and only on "
            "loopback (127.0.0.1, ::1). Bind 127.0.0.1 or put a reverse proxy in front.",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from .app import create_app
    from .config import Settings

    settings = Settings()
    print(
        f"tollgate: OPEN MODE on http://{args.host}:{args.port} - no API keys exist, every local caller is "
        f"served (tenant 'local'). Default provider: {settings.default_provider}.",
        file=sys.stderr,
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollgate", description="OpenAI-compatible LLM gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
