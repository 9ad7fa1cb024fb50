"""The adapters a process holds: one per provider (from its environment variables) and one per routing
deployment (its own base URL, key or region), each built from the catalog's wire protocol. Cheap: no
network; boto3 clients are built lazily. Selection lives in ``engine.route``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..config import PROVIDERS, ProviderConfig, Settings
from ..logs import log_event
from . import catalog
from .base import Provider

if TYPE_CHECKING:
    from ..engine.deployments import Deployment

logger = logging.getLogger("tollgate.providers")


def build_adapter(
    config: ProviderConfig,
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    bedrock_client: Any | None = None,
) -> Provider:
    """The adapter for one provider configuration, by its wire protocol."""
    wire = catalog.spec(config.name).wire
    if wire == "openai":
        from .openai_compat import OpenAICompatProvider

        return OpenAICompatProvider(config, client)
    if wire == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(config, client)
    from .bedrock import BedrockProvider

    return BedrockProvider(
        config,
        max_concurrency=settings.bedrock_max_concurrency,
        connect_timeout=settings.provider_connect_timeout_seconds,
        read_timeout=settings.provider_timeout_seconds,
        client=bedrock_client,
    )


def build_providers(
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    bedrock_client: Any | None = None,
    ecs_client: Any | None = None,
    deployments: Mapping[str, Deployment] | None = None,
) -> dict[str, Provider]:
    """One adapter per canonical provider (keyed by its name), plus one per routing deployment (by id).

    With ``LLAMA_CPP_ECS_CLUSTER`` and ``LLAMA_CPP_ECS_SERVICE`` set, llama_cpp wakes its ECS service on
    demand (``llama_wake``); tests inject ``ecs_client`` (and ``bedrock_client`` for the provider's own).
    """
    providers: dict[str, Provider] = {
        name: build_adapter(
            settings.provider(name),
            settings,
            client,
            bedrock_client=bedrock_client if name == "bedrock" else None,
        )
        for name in PROVIDERS
    }
    cluster, service = settings.llama_cpp_ecs_cluster, settings.llama_cpp_ecs_service
    if cluster and service:
        providers["llama_cpp"] = _wake_on_demand(settings, providers, cluster, service, ecs_client)
    for deployment_id, deployment in (deployments or {}).items():
        if deployment_id not in providers:
            providers[deployment_id] = build_adapter(deployment.config, settings, client)
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
    return WakeOnDemandProvider(providers["llama_cpp"], waker)


def wake_fallback(settings: Settings) -> str | None:
    """The provider that answers while llama.cpp wakes: a configured ``LLAMA_CPP_FALLBACK_PROVIDER`` when
    wake-on-demand is on, else None (an unconfigured one is logged and ignored)."""
    if not (settings.llama_cpp_ecs_cluster and settings.llama_cpp_ecs_service):
        return None
    fallback = fallback_provider(settings)
    if fallback and not settings.provider(fallback).configured:
        log_event(logger, logging.WARNING, "llama_cpp_fallback_unconfigured", provider=fallback)
        return None
    return fallback


def fallback_provider(settings: Settings) -> str | None:
    """The canonical ``LLAMA_CPP_FALLBACK_PROVIDER``; an unknown name or llama_cpp itself is an error."""
    name = settings.llama_cpp_fallback_provider
    if not name:
        return None
    canonical = catalog.canonical(name)
    if canonical is None or canonical == "llama_cpp":
        raise ValueError(f"LLAMA_CPP_FALLBACK_PROVIDER={name!r} must name another known provider")
    return canonical
