"""A client's own top-level fields on the native paths (Anthropic Messages, OpenAI's Responses API,
Bedrock Converse) never choose a dearer price tier, another model or a larger output than the reservation
bounds: such fields never reach the upstream (or are a 400 naming them), and harmless unknown fields still
pass where they did (``providers/passthrough.py``)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.fakes.openai_responses_upstream import FakeOpenAIResponses
from tests.fakes.server import ServerThread
from tests.integration import test_messages_api as messages_suite
from tests.integration import test_responses_native as responses_suite
from tests.integration.state_helpers import Gateway
from tests.integration.test_messages_api import HI, Upstream
from tollgate.errors import BadRequest
from tollgate.providers.anthropic_native import native_fields
from tollgate.schemas.native import AnthropicOptions

# the suites' fixtures: a Messages gateway before each wire's fake, and one before OpenAI's /v1/responses
upstream, gateway = messages_suite.upstream, messages_suite.gateway
fake, gw = responses_suite.fake, responses_suite.gw

MESSAGES_RISKY: dict[str, Any] = {
    "speed": "fast",  # fast mode: a multiple of the standard price
    "service_tier": "auto",  # priority capacity where the account has it
    "fallbacks": [{"model": "claude-opus-4-8"}],  # a refusal re-run on another model
    "inference_geo": "global",  # the default: dropped (the operator's workspace setting decides)
}
# Converse's own request fields, written at the top level by a client that hopes they reach Bedrock
CONVERSE_RISKY: dict[str, Any] = {
    "serviceTier": {"type": "priority"},
    "performanceConfig": {"latency": "optimized"},
    "promptVariables": {"topic": {"text": "x"}},
    "additionalModelRequestFields": {"max_tokens": 64000},
}
MESSAGES_HARMLESS: dict[str, Any] = {
    "top_k": 5,
    "container": {"skills": [{"type": "anthropic", "skill_id": "pptx", "version": "latest"}]},  # a new one
    "mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}],
    "brand_new_field": {"x": 1},
}


def post_messages(gateway: ServerThread, **fields: Any) -> httpx.Response:
    body = {"model": "auto", "max_tokens": 32, "messages": HI, **fields}
    return httpx.post(f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": "x"}, timeout=20)


def test_messages_fields_that_cost_more_never_reach_any_upstream(
    gateway: ServerThread, upstream: Upstream
) -> None:
    upstream.text(["ok"])
    response = post_messages(gateway, **MESSAGES_RISKY, **CONVERSE_RISKY, **MESSAGES_HARMLESS)
    assert response.status_code == 200, response.text
    body = upstream.last_body()
    sent = {*body, *body.get("additionalModelRequestFields", {})}
    assert not sent & set(MESSAGES_RISKY), sent & set(MESSAGES_RISKY)
    assert "claude-opus-4-8" not in json.dumps(body, default=str)
    if upstream.provider != "claude":  # (Anthropic has no such fields: they pass, and it refuses them)
        assert not sent & set(CONVERSE_RISKY), sent & set(CONVERSE_RISKY)
        assert "64000" not in json.dumps(body, default=str)
    if upstream.provider == "claude":  # the Messages API's own harmless fields still pass, as sent
        assert {name: body[name] for name in MESSAGES_HARMLESS} == MESSAGES_HARMLESS
        assert body["max_tokens"] == 32
    elif upstream.provider == "bedrock":
        assert body["inferenceConfig"]["maxTokens"] == 32


@pytest.mark.parametrize("upstream", ["claude"], indirect=True)
def test_us_only_inference_is_a_400_naming_the_field(gateway: ServerThread, upstream: Upstream) -> None:
    """Dropping it would serve a client that asked for US-only processing elsewhere without a word."""
    response = post_messages(gateway, inference_geo="us")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "inference_geo" in error["message"]
    assert upstream.fake.requests == []  # type: ignore[union-attr]


def _responses(gw: Gateway, **fields: Any) -> httpx.Response:
    key = gw.new_key("acme")
    body = {"model": "gpt-5", "input": "hi", **fields}
    return httpx.post(f"{gw.url}/v1/responses", json=body, headers={"x-api-key": key}, timeout=20)


def _native_bodies(fake: FakeOpenAIResponses) -> list[dict[str, Any]]:
    return [body for path, _, body in fake.requests if path == "/v1/responses"]


def test_responses_fields_that_cost_more_are_dropped_the_rest_pass(
    gw: Gateway, fake: FakeOpenAIResponses
) -> None:
    risky = {"service_tier": "priority", "models": ["gpt-5-pro"]}
    harmless = {
        "truncation": "auto",
        "max_tool_calls": 3,
        "prompt_cache_retention": "24h",
        "safety_identifier": "user-1",
        "top_logprobs": 2,
        "brand_new_field": {"x": 1},
    }
    response = _responses(gw, **risky, **harmless)
    assert response.status_code == 200, response.text
    (body,) = _native_bodies(fake)
    assert "service_tier" not in body and "models" not in body
    assert body["max_output_tokens"] == 100  # the cap tollgate reserved for (the configured default)
    assert {name: body[name] for name in harmless} == harmless


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("prompt", {"id": "pmpt_123", "version": "2", "variables": {"city": "Paris"}}),
        ("conversation", "conv_689667905b048191b4740501625afd940c7533ace33a2dab"),
    ],
)
def test_responses_stored_prompt_or_conversation_is_a_400_naming_it(
    gw: Gateway, fake: FakeOpenAIResponses, name: str, value: Any
) -> None:
    """A stored prompt can name its own model and tools; both bring input tollgate never saw."""
    response = _responses(gw, **{name: value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == name
    assert _native_bodies(fake) == []


def test_dropped_fields_are_named_at_debug_never_their_values(caplog: pytest.LogCaptureFixture) -> None:
    options = AnthropicOptions(extra={"speed": "fast", "inference_geo": "global", "top_k": 5})
    with caplog.at_level(logging.DEBUG, logger="tollgate.providers.passthrough"):
        assert native_fields(options, {}) == {"top_k": 5}
    assert "inference_geo, speed" in caplog.text and "fast" not in caplog.text
    with pytest.raises(BadRequest) as info:
        native_fields(AnthropicOptions(extra={"inference_geo": {"region": "us"}}), {})
    assert info.value.param == "inference_geo"
