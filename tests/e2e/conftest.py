"""End to end: a real llama.cpp ``llama-server`` serving SmolLM2-135M, with tollgate in front.

The binary and the model come from ``TOLLGATE_LLAMA_SERVER`` / ``TOLLGATE_SMOLLM2_GGUF`` when set, else from
``scripts/build-llama-server.sh`` / ``scripts/fetch-smollm2.sh`` (both cached, fast after the first run; the
first build takes about ten minutes on two cores). Everything here is session scoped: one llama-server and
one gateway serve the whole e2e suite.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OWN_ENV_PREFIXES
from tests.e2e.console_env import stop
from tests.fakes.server import ServerThread
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
HEALTH_TIMEOUT_S = 120.0
THREADS = min(os.cpu_count() or 2, 4)

# Snapshot at import time: the root conftest's autouse ``clean_env`` strips TOLLGATE_*/LLAMA_CPP_* variables
# around every test, so nothing read lazily could see them.
_ENV = dict(os.environ)


@dataclass(frozen=True)
class LlamaServer:
    url: str
    api_key: str
    log: Path


def _from_script(script: str, variable: str) -> Path:
    """The path a cached helper script prints on stdout (it builds or downloads on a cold cache)."""
    env = {**_ENV, "PYTHON": _ENV.get("PYTHON", sys.executable)}
    result = subprocess.run(
        ["bash", str(SCRIPTS / script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        detail = result.stderr[-4000:]
        pytest.fail(f"{script} failed ({result.returncode}); set {variable} to skip it:\n{detail}")
    lines = result.stdout.strip().splitlines()
    return Path(lines[-1]) if lines else Path()


def _locate(variable: str, script: str) -> Path:
    value = _ENV.get(variable)
    path = Path(value) if value else _from_script(script, variable)
    if not path.is_file():
        pytest.fail(f"{variable}/{script} gave {str(path)!r}, which is not a file")
    return path


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama-server was not healthy after {HEALTH_TIMEOUT_S:.0f}s:\n{_tail(log)}")


def _tail(log: Path, chars: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    return _locate("TOLLGATE_LLAMA_SERVER", "build-llama-server.sh")


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return _locate("TOLLGATE_SMOLLM2_GGUF", "fetch-smollm2.sh")


def _start_llama(binary: Path, gguf: Path, log: Path, *extra: str) -> Iterator[LlamaServer]:
    """A real llama-server on a free port, guarded by a random API key, stopped when the caller is done."""
    api_key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-c", "2048"]
    command += [
        "-t",
        str(THREADS),
        "-np",
        "1",
        "--api-key",
        api_key,
        "--alias",
        "smollm2",
        "--no-webui",
        *extra,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(url, process, log)
        yield LlamaServer(url=url, api_key=api_key, log=log)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def llama_server(
    llama_server_bin: Path, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """The shared llama-server (llama.cpp's default sampling); stopped at the end of the session."""
    log = tmp_path_factory.mktemp("llama-server") / "llama-server.log"
    yield from _start_llama(llama_server_bin, smollm2_gguf, log)


@pytest.fixture(scope="session")
def greedy_llama_server(
    llama_server_bin: Path, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """A llama-server that decodes greedily (``--temp 0``): the coding agents send no temperature, and with
    sampling SmolLM2's short answer sometimes runs into the token cap; greedy, it is the same every run."""
    log = tmp_path_factory.mktemp("greedy-llama") / "llama-server.log"
    yield from _start_llama(llama_server_bin, smollm2_gguf, log, "--temp", "0", "--seed", "7")


def _settings(**overrides: Any) -> Any:
    """Settings built with the machine's own TOLLGATE_*/provider variables out of the way."""
    from tollgate.config import Settings

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(OWN_ENV_PREFIXES):
                patch.delenv(name, raising=False)
        return Settings(
            default_provider="llama_cpp",
            llama_cpp_model="smollm2",
            default_max_tokens=32,
            provider_timeout_seconds=60.0,
            **overrides,
        )


def _gateway(**overrides: Any) -> ServerThread:
    """Open loopback mode (as `tollgate serve` with no keys) on a SQLite store of its own."""
    import tempfile

    from tollgate.app import create_app
    from tollgate.store.sqlite import SQLiteStore

    store = SQLiteStore(str(Path(tempfile.mkdtemp(prefix="tollgate-e2e-")) / "e2e.db"))
    app = create_app(_settings(**overrides), store=store, allow_open=True)
    return ServerThread(app, lifespan="on").start()


@pytest.fixture(scope="session")
def gateway(llama_server: LlamaServer) -> Iterator[ServerThread]:
    """tollgate under uvicorn, in front of the real llama-server."""
    server = _gateway(llama_cpp_base_url=llama_server.url, llama_cpp_api_key=llama_server.api_key)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def greedy_gateway(greedy_llama_server: LlamaServer) -> Iterator[ServerThread]:
    """tollgate under uvicorn, in front of the greedy llama-server."""
    server = _gateway(
        llama_cpp_base_url=greedy_llama_server.url, llama_cpp_api_key=greedy_llama_server.api_key
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway_bad_key(llama_server: LlamaServer) -> Iterator[ServerThread]:
    """A second tollgate that presents the wrong key to llama-server."""
    server = _gateway(llama_cpp_base_url=llama_server.url, llama_cpp_api_key="not-" + llama_server.api_key)
    yield server
    server.stop()
