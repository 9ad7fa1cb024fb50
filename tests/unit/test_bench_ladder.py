"""Smoke tests of bench/ladder.py and bench/floor_apps.py: the rungs' launch settings, the table's steps,
the options, and that every floor app builds and forwards. No timing is asserted: the ladder runs by hand."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def ladder() -> ModuleType:
    return _bench("ladder")


@pytest.fixture(scope="module")
def floor_apps() -> ModuleType:
    return _bench("floor_apps")


def _stats(p50: float, cpu: float, rps: float, errors: int = 0) -> dict[str, Any]:
    return {
        "c1": {"p50_ms": p50, "errors": errors},
        "c16": {"cpu_us_per_request": cpu, "rps": rps, "errors": 0},
    }


def test_each_rung_row_shows_the_step_from_the_rung_before_and_portkey_none(ladder: ModuleType) -> None:
    metrics = {
        "direct": _stats(0.1, 20, 40000),
        "aiohttp": _stats(0.3, 100, 9000),
        "httpx": _stats(0.45, 210, 4500),
        "tollgate": _stats(1.0, 800, 1200, errors=2),
        "portkey": _stats(0.9, 700, 1400),
    }
    rows = ladder.table(metrics)
    by_name = {row.split("|")[1].strip(): [c.strip() for c in row.split("|")[2:-1]] for row in rows[2:]}
    assert by_name["aiohttp"] == ["+0.200", "", "9,000", "100", "", "0"]
    assert by_name["httpx"] == ["+0.350", "+0.150", "4,500", "210", "+110", "0"]
    assert by_name["tollgate"] == ["+0.900", "+0.550", "1,200", "800", "+590", "2"]
    assert by_name["portkey"] == ["+0.800", "", "1,400", "700", "", "0"]  # a reference, not a rung


def test_floor_rungs_get_the_upstream_and_no_gateway_settings(
    ladder: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY", "secret")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    launch = ladder.rung("litestar", 4000, 5000, tmp_path)
    assert launch.env["LADDER_UPSTREAM"] == "http://127.0.0.1:5000/v1/chat/completions"
    assert not [name for name in launch.env if name.startswith(("TOLLGATE_", "OPENAI_"))]
    assert str(BENCH) in launch.env["PYTHONPATH"].split(":")
    assert "floor_apps:litestar_handler" in launch.argv
    null = ladder.rung("tollgate-null", 4001, 5000, tmp_path)
    assert "null_store:create_app" in null.argv
    assert null.env["OPENAI_BASE_URL"] == "http://127.0.0.1:5000/v1"


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--seconds", "0"], ["--requests", "-1"]])
def test_bad_options_are_refused(ladder: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        ladder.parse_args(argv)


def _asgi_post(app: Any, body: bytes, path: str = "/v1/chat/completions") -> tuple[int, bytes]:
    """One request through an ASGI app's lifespan and one POST; the status and the body it answered."""

    app_cpu = _bench("app_cpu")

    async def run() -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async with app_cpu.lifespan(app):
            await app(app_cpu.post_scope(path, [(b"content-type", b"application/json")]), receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    return asyncio.run(run())


@pytest.mark.parametrize("factory", ["raw_aiohttp", "raw_httpx", "litestar_asgi", "litestar_handler"])
def test_every_floor_app_forwards_the_body_and_returns_the_upstreams_answer(
    floor_apps: ModuleType, factory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _echo_upstream() as url:
        monkeypatch.setenv("LADDER_UPSTREAM", url)
        status, body = _asgi_post(getattr(floor_apps, factory)(), b'{"model":"m"}')
    assert (status, json.loads(body)) == (201, {"echo": {"model": "m"}, "auth": "Bearer sk-bench"})


@contextlib.contextmanager
def _echo_upstream() -> Iterator[str]:
    """A real upstream on a loopback socket: 201 and the JSON body it got, with the auth header it got."""

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got = json.loads(self.rfile.read(int(self.headers["content-length"])))
            body = json.dumps({"echo": got, "auth": self.headers["authorization"]}).encode()
            self.send_response(201)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    finally:
        server.shutdown()
        server.server_close()


def test_app_cpu_measures_both_stores_of_this_tree(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/app_cpu.py end to end at a tiny count: each store's run answers 200s and reports a number."""
    assert _bench("app_cpu").main(["--rounds", "1", "--requests", "20"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [(tree.strip(), store.strip()) for tree, store, _, _ in rows] == [
        ("this tree", "sqlite"),
        ("this tree", "null"),
    ]
    assert all(float(median) > 0 for _, _, median, _ in rows)
