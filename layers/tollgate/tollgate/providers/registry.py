"""Provider selection (DESIGN.md §4) and the adapters a process holds.

Selection: the ``provider`` field > a known alias as model prefix (split on the first slash only) >
``TOLLGATE_DEFAULT_PROVIDER``. Model ``auto`` or missing means the provider's configured default.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from ..config import PROVIDER_ALIASES, PROVIDERS, ProviderConfig, Settings
from ..errors import BadRequest, UpstreamUnavailable
from ..logs import log_event
from ..schemas.openai import ChatCompletionRequest
from .base import ChatCall, Provider

logger = logging.getLogger("tollgate.providers")

_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "openrouter": "OPENROUTER_API_KEY", "claude": "CLAUDE_API_KEY"}


def canonical_provider(name: str, *, param: str = "provider") -> str:
    canonical = PROVIDER_ALIASES.get(name.strip().lower())
    if canonical is None:
        known = ", ".join(sorted(PROVIDER_ALIASES))
        raise BadRequest(f"unknown provider {name!r}; known providers and aliases: {known}", param=param)
    return canonical


def split_model(model: str | None) -> tuple[str | None, str | None]:
    """``anthropic/claude-x`` -> (``claude``, ``claude-x``); no known alias prefix -> (None, model)."""
    if model and "/" in model:
        prefix, rest = model.split("/", 1)
        canonical = PROVIDER_ALIASES.get(prefix.lower())
        if canonical is not None:
            return canonical, rest
    return None, model


class Router:
    """Turns a validated request into a ChatCall: which provider, which upstream model, which cap."""

    def __init__(self, settings: Settings) -> None:
        self.default_provider = settings.default_provider
        self.configs: dict[str, ProviderConfig] = {name: settings.provider(name) for name in PROVIDERS}

    def resolve(self, provider: str | None, model: str | None) -> tuple[str, str]:
        prefixed, bare_model = split_model(model)
        if provider:
            canonical = canonical_provider(provider)
            # "provider": "anthropic" with "model": "anthropic/claude-x" names the same thing twice
            if prefixed == canonical:
                model = bare_model
        else:
            canonical = prefixed or self.default_provider
            model = bare_model
        if not model or model == "auto":
            model = self.configs[canonical].model
        return canonical, model

    def plan(self, request: ChatCompletionRequest, request_id: str) -> ChatCall:
        if request.n is not None and request.n != 1:
            raise BadRequest("only n=1 is supported", param="n")
        provider, model = self.resolve(request.provider, request.model)
        config = self.configs[provider]
        if not config.configured:
            raise UpstreamUnavailable(
                f"provider {provider} is not configured: set {_KEY_VARIABLES.get(provider, 'its settings')}"
            )
        max_tokens = request.max_completion_tokens or request.max_tokens or config.max_tokens
        return ChatCall(
            request_id=request_id, provider=provider, model=model, max_tokens=max_tokens, request=request
        )


def build_providers(
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    bedrock_client: Any | None = None,
    ecs_client: Any | None = None,
) -> dict[str, Provider]:
    """One adapter per canonical provider; cheap (no network; boto3 clients are built lazily).

    With ``LLAMA_CPP_ECS_CLUSTER`` and ``LLAMA_CPP_ECS_SERVICE`` set, llama_cpp wakes its ECS service on
    demand (``llama_wake``); tests inject ``ecs_client``.
    """
    from .anthropic import AnthropicProvider
    from .bedrock import BedrockProvider
    from .openai_compat import OpenAICompatProvider

    providers: dict[str, Provider] = {
        name: OpenAICompatProvider(settings.provider(name), client)
        for name in ("openai", "openrouter", "ollama", "llama_cpp")
    }
    providers["claude"] = AnthropicProvider(settings.provider("claude"), client)
    providers["bedrock"] = BedrockProvider(
        settings.provider("bedrock"),
        max_concurrency=settings.bedrock_max_concurrency,
        connect_timeout=settings.provider_connect_timeout_seconds,
        read_timeout=settings.provider_timeout_seconds,
        client=bedrock_client,
    )
    cluster, service = settings.llama_cpp_ecs_cluster, settings.llama_cpp_ecs_service
    if cluster and service:
        providers["llama_cpp"] = _wake_on_demand(settings, providers, cluster, service, ecs_client)
    return providers


def _wake_on_demand(
    settings: Settings, providers: dict[str, Provider], cluster: str, service: str, ecs_client: Any | None
) -> Provider:
    from .llama_wake import LlamaCppWaker, WakeOnDemandProvider

    waker = LlamaCppWaker(
        cluster,
        service,
        region=settings.aws_region,
        retry_after=settings.llama_cpp_wake_retry_after_seconds,
        client=ecs_client,
    )
    fallback = fallback_provider(settings)
    if fallback and not settings.provider(fallback).configured:
        log_event(logger, logging.WARNING, "llama_cpp_fallback_unconfigured", provider=fallback)
        fallback = None
    return WakeOnDemandProvider(
        providers["llama_cpp"],
        waker,
        providers[fallback] if fallback else None,
        fallback_model=settings.provider(fallback).model if fallback else None,
    )


def fallback_provider(settings: Settings) -> str | None:
    """The canonical ``LLAMA_CPP_FALLBACK_PROVIDER``; an unknown name or llama_cpp itself is an error."""
    name = settings.llama_cpp_fallback_provider
    if not name:
        return None
    canonical = PROVIDER_ALIASES.get(name.strip().lower())
    if canonical is None or canonical == "llama_cpp":
        raise ValueError(f"LLAMA_CPP_FALLBACK_PROVIDER={name!r} must name another known provider")
    return canonical
