"""Deployments: where a model can be served. Without a routing config each provider is one deployment built
from its environment variables (id = the provider's name, model = whatever the request asks for); a config
adds one deployment per entry under ``models[].deployments`` (its own model, and optionally its own base URL,
key and Bedrock region).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..config import PROVIDERS, ProviderConfig, Settings
from .routes import DeploymentSpec, RoutingConfig


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str  # health key; named in headers, audit entries and diagnostics (never a key or a URL's secret)
    provider: str  # canonical
    config: ProviderConfig  # base URL, key, region, default model and max_tokens cap
    model: str | None = None  # a config deployment's upstream model; None: the request's model
    weight: float = 1.0

    @property
    def from_environment(self) -> bool:
        return self.model is None


def environment_deployments(settings: Settings) -> dict[str, Deployment]:
    return {name: Deployment(name, name, settings.provider(name)) for name in PROVIDERS}


def deployment_id(spec: DeploymentSpec) -> str:
    """``provider:model``, plus ``@region`` or ``@host`` and ``#KEY_VARIABLE`` when the entry sets them."""
    name = f"{spec.provider}:{spec.model}"
    if spec.region:
        name += f"@{spec.region}"
    if spec.base_url:
        name += f"@{urlsplit(spec.base_url).hostname or spec.base_url}"
    if spec.api_key_env:
        name += f"#{spec.api_key_env}"
    return name


def config_deployment(settings: Settings, spec: DeploymentSpec) -> Deployment:
    base = settings.provider(spec.provider)
    config = replace(base, model=spec.model)
    if spec.base_url:
        config = replace(config, base_url=spec.base_url.rstrip("/"))
    if spec.api_key_env:
        config = replace(config, api_key=settings.variable(spec.api_key_env))
    if spec.region:
        config = replace(config, region=spec.region)
    return Deployment(deployment_id(spec), spec.provider, config, model=spec.model, weight=spec.weight)


def config_deployments(settings: Settings, routing: RoutingConfig) -> dict[str, Deployment]:
    """Every deployment the config names, once (two public names may share a deployment and its health)."""
    found: dict[str, Deployment] = {}
    for model in routing.models:
        for spec in model.deployments:
            deployment = config_deployment(settings, spec)
            found.setdefault(deployment.id, deployment)
    return found
