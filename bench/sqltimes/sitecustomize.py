"""Bench-only: time a gateway's SQLite writes, its requests and its upstream calls (BENCH_SQLTIMES=<dir>).

Put this directory first on PYTHONPATH and set ``BENCH_SQLTIMES`` to a folder: each process (the gateways;
the bench's own process and the stub too, with nothing to record) appends one line per event to
``<dir>/<pid>.tsv``: kind, name, seconds. Kinds: ``inline-ok`` / ``inline-busy`` (a short write tried on
the loop's thread: done, or the lock was taken and it went to the pool), ``pool-write`` / ``pool-read``
(on the thread pool, lock waits included: SQLite's busy handler sleeps there), ``asgi`` / ``asgi-cpu``
(a request's wall time and the process's CPU time meanwhile) and ``httpx-send`` (the upstream call).
Nothing of the request (keys, prompts) is written. Summarise with
``python bench/sqltimes/summary.py <dir>``.

    BENCH_SQLTIMES=/tmp/t PYTHONPATH=bench/sqltimes:layers/tollgate \\
        python bench/fixed_rate_probe.py --stores sqlite --n 8 --layouts bursts
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

_DIR = os.environ.get("BENCH_SQLTIMES")

if _DIR:
    import httpx
    import litestar

    from tollgate.store import sqlite as _sqlite
    from tollgate.store import sqlite_inline as _inline

    _lines: list[str] = []
    _out = open(os.path.join(_DIR, f"{os.getpid()}.tsv"), "a", encoding="utf-8")  # noqa: SIM115

    def _flush() -> None:
        _out.write("".join(_lines))
        _out.flush()
        _lines.clear()

    def _record(kind: str, name: str, seconds: float) -> None:
        _lines.append(f"{kind}\t{name}\t{seconds:.6f}\n")
        if len(_lines) >= 50:
            _flush()

    atexit.register(_flush)

    def _name(fn: Any) -> str:
        return str(getattr(getattr(fn, "func", fn), "__name__", "?"))

    _attempt = _inline.InlineWriter.attempt

    def attempt(self: Any, lock: Any, transaction: Any, fn: Any, *args: Any) -> Any:
        began = time.perf_counter()
        result = _attempt(self, lock, transaction, fn, *args)
        busy = result is _inline.BUSY
        _record("inline-busy" if busy else "inline-ok", _name(fn), time.perf_counter() - began)
        return result

    _inline.InlineWriter.attempt = attempt  # type: ignore[method-assign,assignment]

    def _timed(kind: str, original: Any) -> Any:
        async def timed(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await original(self, fn, *args, **kwargs)
            finally:
                _record(kind, _name(fn), time.perf_counter() - began)

        return timed

    _sqlite._Runner.write = _timed("pool-write", _sqlite._Runner.write)  # type: ignore[method-assign]
    _sqlite._Runner.read = _timed("pool-read", _sqlite._Runner.read)  # type: ignore[method-assign]

    _call = litestar.Litestar.__call__

    async def __call__(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await _call(self, scope, receive, send)
        began, cpu = time.perf_counter(), time.process_time()
        try:
            return await _call(self, scope, receive, send)
        finally:
            _record("asgi", scope["path"], time.perf_counter() - began)
            _record("asgi-cpu", scope["path"], time.process_time() - cpu)

    litestar.Litestar.__call__ = __call__  # type: ignore[method-assign]

    _send = httpx.AsyncClient.send

    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await _send(self, *args, **kwargs)
        finally:
            _record("httpx-send", "-", time.perf_counter() - began)

    httpx.AsyncClient.send = send  # type: ignore[method-assign]
