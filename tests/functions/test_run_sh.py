"""functions/chat/run.sh as the Lambda Web Adapter starts it: uvicorn on AWS_LWA_PORT, never open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port

from . import FUNCTIONS

RUN_SH = FUNCTIONS / "chat" / "run.sh"


def wait_healthy(process: subprocess.Popen[bytes], url: str, timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"run.sh exited with {process.returncode}")
        try:
            return httpx.get(f"{url}/health", timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("run.sh never answered /health")


@pytest.fixture
def chat_function(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` = venv
        "AWS_LWA_PORT": str(port),
        "PORT": "1",  # AWS_LWA_PORT wins
        "TOLLGATE_SQLITE_PATH": str(tmp_path / "tollgate.db"),
    }
    process = subprocess.Popen(["bash", str(RUN_SH)], cwd=tmp_path, env=env)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_run_sh_serves_health_and_is_not_open(chat_function: tuple[subprocess.Popen[bytes], str]) -> None:
    process, url = chat_function
    response = wait_healthy(process, url)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    # no key exists, yet the function does not run open (allow_open is `tollgate serve`'s alone)
    chat = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert chat.status_code == 401 and chat.json()["error"]["code"]
    # exec: the adapter's SIGTERM reaches uvicorn itself, no shell in between
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    assert not cmdline.parent.is_dir() or b"uvicorn" in cmdline.read_bytes()
    process.terminate()
    assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutdown
