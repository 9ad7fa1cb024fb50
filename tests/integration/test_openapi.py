"""GET /openapi.json, and schemathesis over it against a gateway on fake upstreams: no 5xx, whatever it sends.

The fuzz run is the schemathesis CLI (a separate process, as in CI) against a real gateway (uvicorn on a
socket, SQLite in tmp, an admin key and a tenant key). It is bounded by a fixed number of examples per
operation and a fixed seed, and prints its numbers (operations, test cases, failures). Only
``not_a_server_error`` is checked: the schema's responses are loosely typed on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.app import create_admin_app
from tollgate.config import Settings
from tollgate.schemas.limits import MAX_EXPIRES_IN_SECONDS, MAX_OUTPUT_TOKENS
from tollgate.store.sqlite import SQLiteStore

MAX_EXAMPLES = 25  # per operation and phase
SEED = 20261126
FUZZ_TIMEOUT_S = 240  # the deadline for the whole run (it takes ~15-40 s)
NO_BODY = {("post", "/admin/sweep"), ("post", "/admin/keys/{key_id}/revoke")}


@pytest.fixture
def gw(
    fake_openai: FakeOpenAI,
    start_gateway: Callable[..., ServerThread],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Gateway]:
    """Every provider on a local fake, so no provider name a fuzzer sends can reach beyond 127.0.0.1."""
    anthropic = FakeAnthropic()
    with ServerThread(anthropic) as claude, FakeBedrock() as bedrock:
        for name, value in bedrock.env().items():
            monkeypatch.setenv(name, value)
        openai_url = f"{fake_openai.url}/v1"
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=openai_url,
            openrouter_api_key="sk-upstream",
            openrouter_base_url=openai_url,
            ollama_base_url=fake_openai.url,
            llama_cpp_base_url=fake_openai.url,
            claude_api_key="sk-upstream",
            claude_base_url=f"{claude.url}/v1",
            bedrock_model="us.amazon.nova-lite-v1:0",
            admin_key=ADMIN_KEY,
            audit_key=AUDIT_KEY,
            default_max_tokens=50,
            provider_timeout_seconds=30,
        )
        store = SQLiteStore(str(tmp_path / "openapi.db"))
        yield Gateway(start_gateway(settings, include_admin=True, store=store), fake_openai)


def schema_of(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=20)  # no key
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    return dict(response.json())


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, item in schema["paths"].items() for method, op in item.items()}


def resolve(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    return dict(schema["components"]["schemas"][ref.rsplit("/", 1)[1]])


def test_the_schema_is_served_without_a_key_with_bodies_ranges_and_keys(gw: Gateway) -> None:
    gw.new_key("acme")  # keys exist: the gateway is no longer open, the schema still is
    schema = schema_of(f"{gw.url}/openapi.json")
    assert schema["openapi"].startswith("3.1")
    ops = operations(schema)
    writes = {key for key in ops if key[0] in ("post", "put")}
    with_body = {key for key, op in ops.items() if "requestBody" in op}
    assert with_body == writes - NO_BODY  # a new route that reads a body must get its model here
    for key in with_body:
        ref = ops[key]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert resolve(schema, ref)["properties"], key
    chat = resolve(
        schema,
        ops[("post", "/v1/chat/completions")]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
    )
    assert {"type": "integer", "minimum": 1, "maximum": MAX_OUTPUT_TOKENS} in chat["properties"][
        "max_tokens"
    ]["anyOf"]
    legacy = resolve(schema, "#/components/schemas/CompletionRequest")
    assert legacy["required"] == ["prompt"] and "messages" not in legacy["properties"]
    keys = resolve(schema, "#/components/schemas/KeyCreate")
    assert {"type": "integer", "minimum": 1, "maximum": MAX_EXPIRES_IN_SECONDS} in keys["properties"][
        "expires_in"
    ]["anyOf"]
    after_seq = next(p for p in ops[("get", "/v1/audit")]["parameters"] if p["name"] == "after_seq")
    assert after_seq["schema"]["maximum"] == 2**53 - 1
    assert ops[("get", "/health")]["security"] == []
    assert ops[("get", "/v1/models")]["security"] == [{"virtualKey": []}]
    assert ops[("post", "/admin/keys")]["security"] == [{"adminKey": []}]
    assert ops[("get", "/metrics")]["security"] == [{"adminKey": []}]
    assert set(schema["components"]["securitySchemes"]) == {"virtualKey", "adminKey"}
    assert not any("/openapi" in path or "/schema" in path for path in schema["paths"])
    assert httpx.get(f"{gw.url}/schema", timeout=10).status_code == 404  # no UI pages


def test_the_admin_function_serves_its_own_schema(tmp_path: Path) -> None:
    settings = Settings(admin_key=ADMIN_KEY)
    app = create_admin_app(settings, store=SQLiteStore(str(tmp_path / "admin.db")))
    with ServerThread(app, lifespan="on") as server:
        schema = schema_of(f"{server.url}/admin/openapi.json")
    assert schema["paths"] and all(path.startswith("/admin/") for path in schema["paths"])
    assert "requestBody" in schema["paths"]["/admin/keys"]["post"]


def schemathesis_run(url: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        '[auth.openapi.virtualKey]\nbearer = "${TOLLGATE_FUZZ_KEY}"\n'
        '[auth.openapi.adminKey]\nbearer = "${TOLLGATE_FUZZ_ADMIN_KEY}"\n'
    )
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", url,
        "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--generation-database", "none",
        "--report", "json", "--report-json-path", str(tmp_path / "report.json"),
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=FUZZ_TIMEOUT_S, check=False
    )


def test_schemathesis_finds_no_server_error(
    gw: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = os.environ | {"TOLLGATE_FUZZ_KEY": gw.new_key("acme"), "TOLLGATE_FUZZ_ADMIN_KEY": ADMIN_KEY}
    run = schemathesis_run(f"{gw.url}/openapi.json", tmp_path, env)
    report = json.loads((tmp_path / "report.json").read_text())
    cases, ops = report["test_cases"], report["operations"]
    summary = (
        f"schemathesis {report['schemathesis_version']}: {ops['tested']}/{ops['total']} operations, "
        f"{cases['generated']} test cases, {cases['with_failures']} with failures, "
        f"{len(report['errors'])} errors, {report['running_time']:.1f} s "
        f"(seed {SEED}, {MAX_EXAMPLES} examples per operation)"
    )
    with capsys.disabled():  # the numbers always show, also in a passing CI run
        print(f"\n{summary}")
    assert run.returncode == 0, f"{summary}\n{run.stdout[-8000:]}\n{run.stderr[-2000:]}"
    assert cases["with_failures"] == 0 and not report["errors"], summary
    assert ops["tested"] == ops["total"] >= 24 and cases["generated"] > 10 * ops["total"], summary
