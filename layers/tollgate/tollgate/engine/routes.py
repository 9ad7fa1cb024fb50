"""The routing config (``TOLLGATE_CONFIG``): public model names -> deployments and fallbacks, router settings.

A public contract (README "Routing"): validated with pydantic, and a bad file refuses to start with one
message naming the field. Without a file every provider is one deployment built from its environment
variables and nothing is retried, exactly as before routing existed.

``TOLLGATE_CONFIG`` is a path to a YAML file (JSON is YAML) or, on Lambda, ``ssm:/parameter/name``: an SSM
parameter read with powertools Parameters and cached ``TOLLGATE_CONFIG_MAX_AGE_SECONDS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import PROVIDER_ALIASES

SSM_PREFIX = "ssm:"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ConfigError(ValueError):
    """A routing config that cannot be used; the message names the source and the field."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class DeploymentSpec(_Spec):
    provider: str
    model: str = Field(min_length=1)
    base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(None, pattern=_ENV_NAME)
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    weight: float = Field(1.0, gt=0, le=1_000_000)

    @field_validator("provider")
    @classmethod
    def _canonical(cls, value: str) -> str:
        canonical = PROVIDER_ALIASES.get(value.strip().lower())
        if canonical is None:
            raise ValueError(f"unknown provider {value!r}; one of {', '.join(sorted(PROVIDER_ALIASES))}")
        return canonical

    @model_validator(mode="after")
    def _region_is_bedrocks(self) -> DeploymentSpec:
        if self.region is not None and self.provider != "bedrock":
            raise ValueError("region is for bedrock deployments only")
        if self.base_url is not None and self.provider == "bedrock":
            raise ValueError("bedrock deployments take a region, not a base_url")
        return self


class ModelSpec(_Spec):
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    deployments: list[DeploymentSpec] = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)


class RouterSpec(_Spec):
    retries: int = Field(2, ge=0, le=10)
    backoff_seconds: float = Field(0.2, ge=0, le=30)
    retry_after_max_seconds: float = Field(5.0, ge=0, le=300)
    allowed_failures: int = Field(3, ge=1, le=1000)
    cooldown_seconds: float = Field(30.0, ge=0, le=86_400)
    strategy: Literal["weighted", "least-busy"] = "weighted"


NO_RETRIES = RouterSpec(retries=0)


class RoutingConfig(_Spec):
    models: list[ModelSpec] = Field(default_factory=list)
    router: RouterSpec = Field(default_factory=RouterSpec)

    @model_validator(mode="after")
    def _names_and_fallbacks(self) -> RoutingConfig:
        names = [m.name for m in self.models]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ValueError(f"model name {duplicate!r} is defined twice")
        known = set(names)
        for i, model in enumerate(self.models):
            for j, fallback in enumerate(model.fallbacks):
                if fallback not in known:
                    raise ValueError(f"models[{i}].fallbacks[{j}]: unknown model name {fallback!r}")
        cycle = _fallback_cycle({m.name: m.fallbacks for m in self.models})
        if cycle:
            raise ValueError("fallbacks form a cycle: " + " -> ".join(cycle))
        return self

    def model(self, name: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == name), None)


def default_config() -> RoutingConfig:
    """No file: no public names, no retries (each provider is one deployment, as before routing)."""
    return RoutingConfig(router=NO_RETRIES)


def _fallback_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle in the fallback graph as a path (first name repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> list[str]:
        state[name] = 1
        for nxt in graph.get(name, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [name, nxt]
            if state.get(nxt) is None and (found := visit(nxt, [*path, nxt])):
                return found
        state[name] = 2
        return []

    for start in graph:
        if state.get(start) is None and (found := visit(start, [start])):
            return found
    return []


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_config(text: str, source: str) -> RoutingConfig:
    """YAML (or JSON) text -> a validated config, or ConfigError naming ``source`` and the field."""
    import yaml  # lazily: only deployments with a config file pay for it

    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"TOLLGATE_CONFIG {source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"TOLLGATE_CONFIG {source}: the top level must be a mapping (models, router)")
    try:
        return RoutingConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = _field(tuple(first["loc"]))
        message = re.sub(r"^Value error, ", "", first["msg"])
        raise ConfigError(f"TOLLGATE_CONFIG {source}: {where + ': ' if where else ''}{message}") from exc


def load_config(
    source: str | None, *, max_age: float = 60, fetch_ssm: Callable[[str, float], str] | None = None
) -> RoutingConfig:
    """The config named by ``TOLLGATE_CONFIG`` (a path or ``ssm:/name``); the default without one."""
    if not source:
        return default_config()
    if source.startswith(SSM_PREFIX):
        name = source[len(SSM_PREFIX) :]
        return parse_config((fetch_ssm or ssm_parameter)(name, max_age), source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"TOLLGATE_CONFIG {source}: cannot read it: {exc}") from exc
    return parse_config(text, source)


def ssm_parameter(name: str, max_age: float) -> str:
    """An SSM parameter's value through powertools (cached ``max_age`` seconds; imported lazily)."""
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_parameter(name, max_age=int(max_age))
    if not isinstance(value, str):
        raise ConfigError(f"TOLLGATE_CONFIG ssm:{name}: the parameter is not a string")
    return value
