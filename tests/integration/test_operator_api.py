"""Names a tenant controls are validated on every admin and data-plane path (bodies, path and query
parameters); errors carry ``x-tollgate-request-id`` (and ``x-tollgate-provider`` once chosen); a provider
that does not answer says what to set; refused requests are counted apart from served ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import NoCredentialsError

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, Gateway
from tests.ports import free_port
from tollgate.api.errors import status_and_type
from tollgate.config import Settings
from tollgate.providers.bedrock_errors import error_for_exception
from tollgate.store.sqlite import SQLiteStore

LLAMA_KEY = "sk-llama-secret-never-shown"


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    settings = Settings(
        default_provider="llama_cpp",
        llama_cpp_base_url=f"http://127.0.0.1:{free_port()}",
        llama_cpp_api_key=LLAMA_KEY,
        openai_api_key="sk-upstream-secret",
        openai_base_url=f"{fake_openai.url}/v1",
        admin_key=ADMIN_KEY,
        key_cache_seconds=0,
        default_max_tokens=50,
    )
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(tmp_path / "state.db")))
    return Gateway(server, fake_openai)


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("PUT", "/budgets/ac%0ame/p1", "tenant"),
        ("PUT", "/budgets/acme/p%201", "pool"),
        ("PUT", "/budgets/acme/%1b%5b31m", "pool"),
        ("POST", "/keys/key%0a1/revoke", "key_id"),
        ("GET", "/keys?tenant=ac%0ame", "tenant"),
        ("GET", "/budgets?tenant=a%20b", "tenant"),
        ("GET", "/costs?tenant=", "tenant"),
        ("GET", "/audit/verify?tenant=a%2Fb", "tenant"),
    ],
)
def test_admin_names_are_validated_everywhere(gw: Gateway, method: str, path: str, param: str) -> None:
    response = gw.admin(method, path, json={"tokens": 5} if method == "PUT" else None)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_request" and param in error["message"]
    pools = gw.admin("GET", "/budgets").json()["pools"]
    assert [p for p in pools if p["tenant"] != "local"] == []  # nothing was created (open mode has local's)


def test_admin_key_bodies_are_validated(gw: Gateway) -> None:
    for tenant in ("", "ac\nme", "a" * 65):
        response = gw.admin("POST", "/keys", json={"tenant": tenant})
        assert response.status_code == 400 and response.json()["error"]["param"] == "tenant"
    assert gw.admin("POST", "/keys", json={"tenant": "acme", "expires_in": -10}).status_code == 400


def test_session_ids_in_paths_are_validated(gw: Gateway) -> None:
    key = gw.new_key("acme")
    response = httpx.delete(f"{gw.url}/v1/sessions/s%0a1", headers={"x-api-key": key})
    assert response.status_code == 400 and response.json()["error"]["param"] == "session_id"
    assert httpx.delete(f"{gw.url}/v1/sessions/s1", headers={"x-api-key": key}).status_code == 404


def test_errors_carry_the_request_id_and_the_provider_once_known(gw: Gateway) -> None:
    key = gw.new_key("acme")
    for response in (
        gw.chat(None),  # 401 before anything
        httpx.get(f"{gw.url}/no/such/route"),  # 404 from the router
        gw.chat(key, {"messages": "not a list"}),  # 400 before a provider is chosen
    ):
        assert len(response.headers["x-tollgate-request-id"]) == 32, response.status_code
        assert "x-tollgate-provider" not in response.headers
    gw.set_budget("acme", "default", 10)
    refused = gw.chat(key, {"model": "openai/gpt-4o-mini"})
    assert refused.status_code == 429 and refused.headers["x-tollgate-provider"] == "openai"
    assert len(refused.headers["x-tollgate-request-id"]) == 32


def test_a_provider_that_does_not_answer_says_what_to_set(gw: Gateway) -> None:
    gw.new_key("acme")
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", None)
    response = gw.chat(key, {"model": "auto"})  # the default provider, llama_cpp, on a closed port
    assert response.status_code == 503 and response.headers["x-tollgate-provider"] == "llama_cpp"
    message = response.json()["error"]["message"]
    assert message.startswith("cannot connect to llama_cpp at http://127.0.0.1:")
    assert "start llama-server or set LLAMA_CPP_BASE_URL" in message
    assert "TOLLGATE_DEFAULT_PROVIDER" in message and LLAMA_KEY not in message
    summary = gw.get(key, "/v1/costs").json()
    assert summary["requests"] == 0 and summary["refused"] == 1  # audited, but nothing was served


def test_bedrock_without_credentials_is_503_naming_what_to_configure() -> None:
    error = error_for_exception(NoCredentialsError())
    assert status_and_type(error) == (503, "service_unavailable_error")
    assert error.code == "provider_unavailable"
    assert "AWS_ACCESS_KEY_ID" in error.message and "TOLLGATE_DEFAULT_PROVIDER" in error.message
