"""Every failure reaches the client in the OpenAI error shape with the right status."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.ports import free_port
from tollgate.config import Settings

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]) -> ServerThread:
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream",
        openai_base_url=f"{fake_openai.url}/v1",
        ollama_base_url=f"http://127.0.0.1:{free_port()}",
        provider_timeout_seconds=0.5,
        max_body_bytes=64 * 1024,
    )
    return start_gateway(settings)


def post(gateway: ServerThread, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10, **kwargs)  # type: ignore[arg-type]


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "x"}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"messages": MESSAGES, "n": 2}, "n"),
        ({"messages": MESSAGES, "provider": "nope"}, "provider"),
        ({"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_requests_name_the_field(gateway: ServerThread, body: object, param: str) -> None:
    error = assert_error(post(gateway, body), 400)
    assert error["param"] == param
    assert param.split(".")[0].split("[")[0] in str(error["message"])


def test_bad_json_and_wrong_shapes(gateway: ServerThread) -> None:
    for content in (b"{not json", b"[1,2]", b""):
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert_error(response, 400)


def test_body_too_large_is_413(gateway: ServerThread) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 100_000}]}
    assert_error(post(gateway, big), 413)


def test_unknown_route_is_404_in_openai_shape(gateway: ServerThread) -> None:
    assert_error(httpx.get(f"{gateway.url}/v1/nothing"), 404)


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (400, 400, "upstream_bad_request"),
        (401, 502, "upstream_auth_error"),
        (403, 502, "upstream_auth_error"),
        (429, 429, "upstream_rate_limited"),
        (500, 502, "upstream_error"),
        (503, 503, "provider_unavailable"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_statuses_map(
    gateway: ServerThread, fake_openai: FakeOpenAI, status: int, expected: int, code: str, stream: bool
) -> None:
    fake_openai.script = Script(
        status=status,
        error_message="model xyz does not exist",
        headers={"retry-after": "7"} if status == 429 else {},
    )
    response = post(gateway, {"messages": MESSAGES, "stream": stream})
    error = assert_error(response, expected, code)
    if status == 400:
        assert "model xyz does not exist" in str(error["message"])
    if status in (401, 403):
        assert "upstream rejected tollgate's credentials for openai" in str(error["message"])
        assert "sk-upstream" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


def test_connection_refused_is_503(gateway: ServerThread) -> None:
    assert_error(post(gateway, {"messages": MESSAGES, "provider": "ollama"}), 503, "provider_unavailable")


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_timeout_is_504(gateway: ServerThread, fake_openai: FakeOpenAI, stream: bool) -> None:
    fake_openai.script = Script(initial_delay=1.0)
    assert_error(post(gateway, {"messages": MESSAGES, "stream": stream}), 504, "upstream_timeout")


def test_timeout_after_stream_began_is_an_error_event(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    fake_openai.script = Script(delay=1.0)
    response = post(gateway, {"messages": MESSAGES, "stream": True})
    assert response.status_code == 200
    last = [line for line in response.text.splitlines() if line.startswith("data: ")][-1]
    assert '"code":"upstream_timeout"' in last


def test_failure_after_stream_began_is_a_final_error_event(
    gateway: ServerThread, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = Script(texts=["a", "b", "c"], fail_after=2)
    response = post(gateway, {"messages": MESSAGES, "stream": True})
    assert response.status_code == 200
    frames = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in frames
    assert '"error"' in frames[-1] and "upstream says no" in frames[-1]
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))  # type: ignore[arg-type]


def test_unconfigured_provider_says_what_to_set(gateway: ServerThread) -> None:
    error = assert_error(post(gateway, {"messages": MESSAGES, "model": "anthropic/claude-x"}), 503)
    assert "CLAUDE_API_KEY" in str(error["message"])


def test_sdk_sees_typed_errors(gateway: ServerThread, fake_openai: FakeOpenAI) -> None:
    sdk = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    fake_openai.script = Script(status=429)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    fake_openai.script = Script(status=400)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
