"""`tollgate serve`: open mode only on loopback, and a real process answering /health."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from tollgate.cli import is_loopback, main


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.5", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_serve_refuses_public_bind_without_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().err


def test_serve_runs_and_answers_health(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    env["TOLLGATE_SQLITE_PATH"] = str(tmp_path / "serve.db")
    process = subprocess.Popen(
        [sys.executable, "-m", "tollgate.cli", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "serve did not come up"
                time.sleep(0.1)
        assert response.json()["status"] == "ok"
        crowded = {f"x-h{n}": "v" for n in range(120)}  # serve bounds the header count (serve_http.py)
        refused = httpx.get(f"http://127.0.0.1:{port}/health", headers=crowded, timeout=5)
        assert refused.status_code == 431 and refused.json()["error"]["code"] == "headers_too_large"
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "OPEN MODE" in stderr and f"serving http://127.0.0.1:{port}" in stderr
    assert f"store: sqlite {env['TOLLGATE_SQLITE_PATH']}" in stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "models: [{name: a, deployments: [{provider: nope, model: m}]}]",
            "models[0].deployments[0].provider",
        ),
        ("models: [{name: a, deployments: [{provider: openai, model: m}], fallbacks: [zzz]}]", "zzz"),
    ],
)
def test_serve_refuses_a_bad_routing_config_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text(text)
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))
    monkeypatch.setenv("TOLLGATE_CONFIG", str(config))
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tollgate: TOLLGATE_CONFIG {config}:") and named in err
    assert "\n" not in err and "Traceback" not in err
