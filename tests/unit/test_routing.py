"""Provider selection (DESIGN.md §4), request validation and the settings object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tollgate.api.body import decode_json_object, validate
from tollgate.config import Settings
from tollgate.engine.route import Router, split_model
from tollgate.engine.routes import parse_config
from tollgate.errors import BadRequest, UpstreamUnavailable
from tollgate.providers.base import ChatCall
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


def plan(router: Router, body: dict[str, object]) -> ChatCall:
    """The call the route's first candidate would get."""
    request = ChatCompletionRequest.model_validate(body)
    return router.call(router.route(request).candidates()[0], request, "r")


def test_plan_caps_and_rejections(router: Router) -> None:
    assert plan(router, {"messages": MESSAGES}).max_tokens == 1024
    assert plan(router, {"messages": MESSAGES, "max_tokens": 5}).max_tokens == 5
    body = {"messages": MESSAGES, "max_tokens": 5, "max_completion_tokens": 9}
    assert plan(router, body).max_tokens == 9
    with pytest.raises(BadRequest, match="n=1"):
        plan(router, {"messages": MESSAGES, "n": 3})
    with pytest.raises(BadRequest) as info:
        plan(router, {"messages": MESSAGES, "provider": "x"})
    assert info.value.param == "provider"


def test_unconfigured_cloud_provider_is_unavailable() -> None:
    with pytest.raises(UpstreamUnavailable, match="OPENAI_API_KEY"):
        plan(Router(Settings()), {"messages": MESSAGES, "provider": "openai"})


CONFIG = """
models:
  - name: smart
    deployments:
      - {provider: openai, model: gpt-4.1}
      - {provider: bedrock, model: us.amazon.nova-pro-v1:0, region: us-west-2}
    fallbacks: [cheap]
  - name: cheap
    deployments: [{provider: anthropic, model: claude-haiku-4-5}]
    fallbacks: [local]
  - name: local
    deployments: [{provider: llama_cpp, model: smollm2}]
  - name: openai/gpt-4o
    deployments: [{provider: openrouter, model: openai/gpt-4o}]
"""


def test_public_names_route_to_deployments_then_fallbacks() -> None:
    router = Router(
        Settings(openai_api_key="sk", claude_api_key="sk", openrouter_api_key="sk"), parse_config(CONFIG, "t")
    )
    route = router.route(ChatCompletionRequest.model_validate({"model": "smart", "messages": MESSAGES}))
    assert route.public_name == "smart"
    assert [[c.deployment for c in g] for g in route.groups] == [
        ["openai:gpt-4.1", "bedrock:us.amazon.nova-pro-v1:0@us-west-2"],
        ["claude:claude-haiku-4-5"],
        ["llama_cpp:smollm2"],
    ]
    # a public name takes precedence over the provider prefix it looks like
    shadow = router.route(
        ChatCompletionRequest.model_validate({"model": "openai/gpt-4o", "messages": MESSAGES})
    )
    assert [c.provider for c in shadow.candidates()] == ["openrouter"]
    # the provider field names a provider's own deployment, never a public name
    direct = router.route(
        ChatCompletionRequest.model_validate({"provider": "openai", "model": "smart", "messages": MESSAGES})
    )
    assert [(c.deployment, c.model) for c in direct.candidates()] == [("openai", "smart")]
    call = router.call(
        route.candidates()[1],
        route_request := ChatCompletionRequest.model_validate({"model": "smart", "messages": MESSAGES}),
        "r",
    )
    assert (call.provider, call.model, call.deployment) == (
        "bedrock",
        "us.amazon.nova-pro-v1:0",
        "bedrock:us.amazon.nova-pro-v1:0@us-west-2",
    )
    assert router.deployments[call.deployment].config.region == "us-west-2"
    assert route_request.model == "smart"


def test_deployments_without_keys_are_left_out() -> None:
    router = Router(Settings(claude_api_key="sk"), parse_config(CONFIG, "t"))  # no OpenAI key
    route = router.route(ChatCompletionRequest.model_validate({"model": "smart", "messages": MESSAGES}))
    assert [c.provider for c in route.candidates()] == ["bedrock", "claude", "llama_cpp"]


def test_a_deployment_key_comes_from_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_KEY_2", "sk-second")
    config = parse_config(
        "models: [{name: s, deployments: [{provider: openai, model: m, api_key_env: OPENAI_KEY_2,"
        " base_url: 'https://eu.example.test/v1'}]}]",
        "t",
    )
    router = Router(Settings(openai_api_key="sk-first"), config)
    deployment = router.deployments["openai:m@eu.example.test#OPENAI_KEY_2"]
    assert deployment.config.api_key is not None
    assert deployment.config.api_key.get_secret_value() == "sk-second"
    assert deployment.config.base_url == "https://eu.example.test/v1"
    secret = Settings(secret_values={"OPENAI_KEY_2": "sk-from-secret"})
    assert (
        Router(secret, config).deployments[deployment.id].config.api_key.get_secret_value()
        == "sk-from-secret"
    )  # type: ignore[union-attr]


def test_wake_on_demand_fallback_is_a_second_group() -> None:
    router = Router(Settings(claude_api_key="sk"), wake_fallback="claude")
    route = router.route(ChatCompletionRequest.model_validate({"messages": MESSAGES}))
    assert [c.provider for c in route.candidates()] == ["llama_cpp", "claude"]
    assert route.min_attempts == 2


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
