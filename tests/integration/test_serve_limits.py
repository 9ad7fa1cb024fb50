"""``tollgate serve``'s request heads are bounded (serve_http.py), proven over real sockets: size, count,
time; refusals come back in the OpenAI error shape; ordinary requests and keep-alive are untouched."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.fakes.server import ServerThread
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.serve_http import bounded_protocol
from tollgate.store.sqlite import SQLiteStore

TIMEOUT = 0.6


@pytest.fixture
def server(tmp_path) -> Iterator[ServerThread]:  # type: ignore[no-untyped-def]
    settings = Settings(max_header_bytes=4096, max_headers=20, header_timeout_seconds=TIMEOUT)
    app = create_app(settings, allow_open=True, store=SQLiteStore(str(tmp_path / "s.db")))
    with ServerThread(app, lifespan="on", http=bounded_protocol(settings)) as running:
        yield running


def _connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _error(raw: bytes, status: int) -> dict[str, object]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"content-type: application/json" in head.lower() and b"x-tollgate-request-id: " in head
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    return dict(error)


def _request(path: str = "/health", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra + b"\r\n"


def test_an_ordinary_request_and_keep_alive_past_the_head_timeout(server: ServerThread) -> None:
    with _connect(server) as sock:
        sock.sendall(_request())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        time.sleep(TIMEOUT + 0.3)  # the first head's timer must not cut the connection's next request
        sock.sendall(_request(extra=b"Connection: close\r\n"))
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_a_slowloris_client_is_cut_after_the_timeout(server: ServerThread) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for n in range(40):  # one header every 0.1 s: each byte is in time, the head never is
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered (and closed): writing on would only provoke a reset
            sock.sendall(f"X-Drip-{n}: 1\r\n".encode())
            time.sleep(0.1)
        raw = _read_all(sock)
        elapsed = time.monotonic() - started
    assert _error(raw, 408)["code"] == "request_timeout"
    assert TIMEOUT <= elapsed < TIMEOUT + 2


def test_an_idle_connection_is_closed_after_the_timeout(server: ServerThread) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert _read_all(sock) == b""
        assert time.monotonic() - started < TIMEOUT + 2


def test_too_many_headers_is_431(server: ServerThread) -> None:
    headers = b"".join(f"X-H{n}: v\r\n".encode() for n in range(21))  # + Host = 22 > 20
    with _connect(server) as sock:
        sock.sendall(_request(extra=headers))
        error = _error(_read_all(sock), 431)
    assert error["code"] == "headers_too_large" and "more than 20 request headers" in str(error["message"])


@pytest.mark.parametrize("split", [False, True])
def test_too_large_headers_are_431(server: ServerThread, split: bool) -> None:
    big = b"X-Big: " + b"a" * 5000 + b"\r\n"
    with _connect(server) as sock:
        if split:  # a head that never ends: refused once it passes the limit, not buffered on
            sock.sendall(_request()[:-2] + big[:3000])
            time.sleep(0.05)
            sock.sendall(big[3000:])
        else:
            sock.sendall(_request(extra=big))
        error = _error(_read_all(sock), 431)
    assert "larger than 4096 bytes" in str(error["message"])


def test_a_malformed_head_is_400_in_the_openai_shape(server: ServerThread) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nBad Header Without Colon\r\n\r\n")
        assert _error(_read_all(sock), 400)["code"] == "invalid_request"
