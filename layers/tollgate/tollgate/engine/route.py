"""From a request's ``provider`` and ``model`` to the candidates that may serve it (DESIGN.md §4):

1. the ``provider`` field, if present (then ``model`` is that provider's upstream model);
2. else a public model name of the routing config (it takes precedence over provider prefixes): its
   deployments, then its fallbacks' (in order, transitively);
3. else a provider alias as the model prefix (split on the first slash only);
4. else ``TOLLGATE_DEFAULT_PROVIDER``. Model ``auto`` or missing means the provider's configured default.

Cases 1, 3 and 4 are served by that provider's deployment from its environment variables; llama.cpp behind
wake-on-demand gets ``LLAMA_CPP_FALLBACK_PROVIDER`` as a fallback group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..config import ProviderConfig, Settings
from ..errors import BadRequest, UpstreamUnavailable
from ..providers import catalog
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from .deployments import Deployment, config_deployments, deployment_id, environment_deployments
from .health import HealthBook
from .plan import Candidate
from .routes import ModelSpec, RoutingConfig, default_config


@dataclass(frozen=True, slots=True)
class Route:
    """The candidates of one request, in groups: the model's deployments, then each fallback's."""

    groups: tuple[tuple[Candidate, ...], ...]
    public_name: str | None = None
    min_attempts: int = 1  # wake-on-demand's fallback is tried even without retries

    def candidates(self) -> list[Candidate]:
        return [c for group in self.groups for c in group]

    def only(self, keep: Callable[[Candidate], bool]) -> Route:
        """The route without the candidates ``keep`` refuses (groups left empty are dropped)."""
        groups = tuple(kept for g in self.groups if (kept := tuple(c for c in g if keep(c))))
        return replace(self, groups=groups)


def canonical_provider(name: str, *, param: str = "provider") -> str:
    found = catalog.canonical(name)
    if found is None:
        known = ", ".join(sorted(catalog.ALIASES))
        raise BadRequest(f"unknown provider {name!r}; known providers and aliases: {known}", param=param)
    return found


def split_model(model: str | None) -> tuple[str | None, str | None]:
    """``anthropic/claude-x`` -> (``claude``, ``claude-x``); no known alias prefix -> (None, model)."""
    if model and "/" in model:
        prefix, rest = model.split("/", 1)
        found = catalog.canonical(prefix)
        if found is not None:
            return found, rest
    return None, model


class Router:
    """Routes requests to deployments and keeps every deployment's health (per process)."""

    def __init__(
        self,
        settings: Settings,
        routing: RoutingConfig | None = None,
        *,
        wake_fallback: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routing = routing or default_config()
        self.default_provider = settings.default_provider
        self.environment = environment_deployments(settings)
        self.deployments: dict[str, Deployment] = self.environment | config_deployments(
            settings, self.routing
        )
        self.wake_fallback = wake_fallback
        policy = self.routing.router
        self.health = HealthBook(
            allowed_failures=policy.allowed_failures, cooldown_seconds=policy.cooldown_seconds, clock=clock
        )

    @property
    def configs(self) -> dict[str, ProviderConfig]:
        """Each provider's configuration from its environment variables."""
        return {name: d.config for name, d in self.environment.items()}

    def refresh(self, settings: Settings) -> None:
        """New secrets: rebuild every deployment's configuration; health stays."""
        self.default_provider = settings.default_provider
        self.environment = environment_deployments(settings)
        self.deployments = self.environment | config_deployments(settings, self.routing)

    def configured_model(self, provider: str, model: str) -> bool:
        """An upstream model the operator named: a routing deployment's, or a provider's default."""
        return any(
            d.provider == provider and model in (d.model, d.config.model) for d in self.deployments.values()
        )

    def resolve(self, provider: str | None, model: str | None) -> tuple[str, str]:
        """The provider and upstream model for cases 1, 3 and 4 (no public names)."""
        prefixed, bare_model = split_model(model)
        if provider:
            canonical = canonical_provider(provider)
            if prefixed == canonical:  # "provider": "anthropic" with "model": "anthropic/claude-x"
                model = bare_model
        else:
            canonical = prefixed or self.default_provider
            model = bare_model
        if not model or model == "auto":
            model = self.configs[canonical].model
        return canonical, model

    def route(self, request: ChatCompletionRequest) -> Route:
        if request.n is not None and request.n != 1:
            raise BadRequest("only n=1 is supported", param="n")
        public = self.public_route(request.provider, request.model)
        if public is not None:
            return public
        return self.provider_route(*self.resolve(request.provider, request.model))

    def public_route(self, provider: str | None, model: str | None) -> Route | None:
        """The route of a public model name (only when no ``provider`` field is given)."""
        spec = None if provider else self.routing.model(model or "")
        return None if spec is None else self._public(spec)

    def provider_route(self, provider: str, model: str) -> Route:
        """One provider's own deployment (and wake-on-demand's fallback for llama.cpp)."""
        self._check_configured(provider)
        groups: list[tuple[Candidate, ...]] = [(Candidate(provider, provider, model),)]
        if provider == "llama_cpp" and self.wake_fallback is not None:
            fallback = self.environment[self.wake_fallback].config
            groups.append((Candidate(fallback.name, fallback.name, fallback.model),))
        return Route(tuple(groups), min_attempts=len(groups))

    def _public(self, spec: ModelSpec) -> Route:
        groups: list[tuple[Candidate, ...]] = []
        for name in self._with_fallbacks(spec.name):
            model = self.routing.model(name)
            assert model is not None  # the config validated every fallback name
            group = tuple(
                Candidate(deployment_id(d), d.provider, d.model, d.weight, spec.name)
                for d in model.deployments
                if self.deployments[deployment_id(d)].config.configured
            )
            if group:
                groups.append(group)
        if not groups:
            raise UpstreamUnavailable(
                f"no deployment of model {spec.name!r} is configured (missing API keys)"
            )
        return Route(tuple(groups), public_name=spec.name)

    def public_names(self, allows: Callable[..., bool]) -> list[str]:
        """The config's public names some configured deployment of which ``allows`` admits."""
        names = []
        for spec in self.routing.models:
            try:
                route = self._public(spec)
            except UpstreamUnavailable:
                continue
            if any(allows(c.provider, c.model, public_name=c.public_name) for c in route.candidates()):
                names.append(spec.name)
        return names

    def _with_fallbacks(self, name: str) -> list[str]:
        """``name``, then its fallbacks depth-first in order, each once."""
        order: list[str] = []
        pending = [name]
        while pending:
            current = pending.pop(0)
            if current in order:
                continue
            order.append(current)
            model = self.routing.model(current)
            pending = [*(model.fallbacks if model else []), *pending]
        return order

    def _check_configured(self, provider: str) -> None:
        if not self.configs[provider].configured:
            variable = catalog.spec(provider).key_variable or "its settings"
            raise UpstreamUnavailable(f"provider {provider} is not configured: set {variable}")

    def call(self, candidate: Candidate, request: ChatCompletionRequest, request_id: str) -> ChatCall:
        """The upstream call a candidate would get (its deployment's cap when the request sets none)."""
        config = self.deployments[candidate.deployment].config
        max_tokens = request.max_completion_tokens or request.max_tokens or config.max_tokens
        return ChatCall(
            request_id, candidate.provider, candidate.model, max_tokens, request, candidate.deployment
        )
