"""Provider selection (DESIGN.md §4), request validation and the settings object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tollgate.api.body import decode_json_object, validate
from tollgate.config import Settings
from tollgate.errors import BadRequest, UpstreamUnavailable
from tollgate.providers.registry import Router, split_model
from tollgate.schemas.openai import ChatCompletionRequest

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def router() -> Router:
    return Router(
        Settings(
            default_provider="llama.cpp",
            openai_api_key="sk",
            openrouter_api_key="sk",
            claude_api_key="sk",
            claude_model="claude-haiku-4-5",
        )
    )


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        (None, None, ("llama_cpp", "smollm2")),
        (None, "auto", ("llama_cpp", "smollm2")),
        (None, "my-local-model", ("llama_cpp", "my-local-model")),
        (None, "anthropic/claude-3-5-haiku-latest", ("claude", "claude-3-5-haiku-latest")),
        (
            None,
            "openrouter/meta-llama/llama-3.1-8b-instruct",
            ("openrouter", "meta-llama/llama-3.1-8b-instruct"),
        ),
        (None, "qwen/auto", ("ollama", "qwen2.5:7b")),
        (None, "meta-llama/llama-3.1-8b", ("llama_cpp", "meta-llama/llama-3.1-8b")),
        ("openrouter", "meta-llama/llama-3.1-8b", ("openrouter", "meta-llama/llama-3.1-8b")),
        ("openrouter", "openai/gpt-4o", ("openrouter", "openai/gpt-4o")),
        ("anthropic", "anthropic/claude-x", ("claude", "claude-x")),
        (
            "Bedrock",
            "us.anthropic.claude-3-5-haiku-20241022-v1:0",
            ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ),
        ("claude", None, ("claude", "claude-haiku-4-5")),
    ],
)
def test_resolve(router: Router, provider: str | None, model: str | None, expected: tuple[str, str]) -> None:
    assert router.resolve(provider, model) == expected


def test_split_model_only_on_known_alias() -> None:
    assert split_model("ollama_qwen/qwen3:8b") == ("ollama", "qwen3:8b")
    assert split_model("mistralai/mistral-7b") == (None, "mistralai/mistral-7b")


def test_plan_caps_and_rejections(router: Router) -> None:
    call = router.plan(ChatCompletionRequest.model_validate({"messages": MESSAGES}), "r")
    assert call.max_tokens == 1024
    call = router.plan(ChatCompletionRequest.model_validate({"messages": MESSAGES, "max_tokens": 5}), "r")
    assert call.max_tokens == 5
    body = {"messages": MESSAGES, "max_tokens": 5, "max_completion_tokens": 9}
    assert router.plan(ChatCompletionRequest.model_validate(body), "r").max_tokens == 9
    with pytest.raises(BadRequest, match="n=1"):
        router.plan(ChatCompletionRequest.model_validate({"messages": MESSAGES, "n": 3}), "r")
    with pytest.raises(BadRequest) as info:
        router.plan(ChatCompletionRequest.model_validate({"messages": MESSAGES, "provider": "x"}), "r")
    assert info.value.param == "provider"


def test_unconfigured_cloud_provider_is_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable, match="OPENAI_API_KEY"):
        Router(Settings()).plan(
            ChatCompletionRequest.model_validate({"messages": MESSAGES, "provider": "openai"}), "r"
        )


def test_settings_reject_unknown_default_provider() -> None:
    with pytest.raises(ValidationError):
        Settings(default_provider="nope")


def test_settings_read_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_DEFAULT_PROVIDER", "anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("OPENROUTER_HTTP_REFERER", "https://me.test")
    settings = Settings()
    assert settings.default_provider == "claude"
    assert settings.provider("claude").configured
    assert settings.provider("openrouter").headers["HTTP-Referer"] == "https://me.test"
    assert "sk-ant" not in repr(settings)


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "empty"), (b"{", "not valid JSON"), (b'"x"', "JSON object")],
)
def test_decode_errors(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        decode_json_object(raw)


def test_validation_error_names_nested_field() -> None:
    with pytest.raises(BadRequest) as info:
        validate(ChatCompletionRequest, {"messages": [{"role": "user", "content": [{"type": "video"}]}]})
    assert info.value.param is not None and info.value.param.startswith("messages[0].content")
