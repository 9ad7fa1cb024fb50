"""Benchmark servers in their own processes: start, wait until ready, read CPU time, stop."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
UVICORN_FLAGS = ["--workers", "1", "--log-level", "warning", "--no-access-log"]


def event_loop_name() -> str:
    """What uvicorn's ``--loop auto`` / ``--http auto`` pick in this interpreter."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}+{http}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _probe(port: int, path: str) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Server:
    """One server subprocess; its output goes to ``log_path``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        # cwd = the log's folder, so that anything the server writes to "." lands there, not in the repo
        self.process = subprocess.Popen(
            argv, env=env, cwd=log_path.parent, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, path: str, timeout: float = 30.0, interval: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if _probe(self.port, path):
                return
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the process so far (Linux /proc); None elsewhere."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT (graceful: uvicorn runs the lifespan shutdown, cProfile writes its file), then kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes on this machine have spent busy since boot (Linux /proc); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def stub_argv(port: int) -> list[str]:
    return [sys.executable, str(BENCH_DIR / "stub_upstream.py"), "--host", HOST, "--port", str(port)]


def gateway_argv(port: int, factory: str, profile_to: Path | None) -> list[str]:
    """The chat Lambda's own entry (functions/chat/run.sh), optionally under cProfile."""
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    return [
        sys.executable,
        *profiler,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        HOST,
        "--port",
        str(port),
        *UVICORN_FLAGS,
    ]


def without_settings() -> dict[str, str]:
    """This process's environment without tollgate's, OpenAI's or AWS settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "OPENAI_", "AWS_"))}


def with_bench_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with bench/ first on PYTHONPATH (for ``--factory null_store:...`` and the like)."""
    paths = [str(BENCH_DIR), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def gateway_env(upstream_port: int, workdir: Path, log_level: str) -> dict[str, str]:
    """Settings by environment, as on Lambda; nothing of the caller's provider config leaks in."""
    env = without_settings()
    env.update(
        TOLLGATE_DEFAULT_PROVIDER="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=f"http://{HOST}:{upstream_port}/v1",
        TOLLGATE_LOG_LEVEL=log_level,
        TOLLGATE_SQLITE_PATH=str(workdir / "bench.db"),
    )
    return env


def seconds_to_ready(
    name: str, argv_for: Callable[[int], list[str]], env: dict[str, str], log_path: Path, ready: str
) -> float:
    """Spawn a server and time it until ``ready`` answers 200 (what the Lambda Web Adapter waits for)."""
    port = free_port()
    started = time.perf_counter()
    server = Server(name, argv_for(port), env, log_path, port)
    try:
        server.wait_ready(ready, interval=0.002)
        return time.perf_counter() - started
    finally:
        server.stop()


@contextlib.contextmanager
def running(server: Server, ready: str) -> Iterator[Server]:
    """Wait until ``ready`` answers 200; stop the server on the way out, whatever happened."""
    try:
        server.wait_ready(ready)
        yield server
    finally:
        server.stop()
