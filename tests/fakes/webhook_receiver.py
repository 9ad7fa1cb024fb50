"""A real HTTP webhook receiver on 127.0.0.1 (a thread): records every call; it can be switched to fail
(HTTP 503) or to hang (no answer until released), as a webhook that is down or stuck would."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Call:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


class WebhookReceiver:
    def __init__(self) -> None:
        self.calls: list[Call] = []  # answered with 2xx
        self.refused = 0  # answered with 503
        self.mode = "ok"  # ok | fail | hang
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.mode == "hang":
                    receiver.released.wait(30)
                    return
                with receiver._lock:
                    if receiver.mode == "fail":
                        receiver.refused += 1
                    else:
                        receiver.calls.append(
                            Call(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                        )
                self.send_response(503 if receiver.mode == "fail" else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tollgate"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
