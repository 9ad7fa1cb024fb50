"""Settings: one pydantic object read from the environment, once per process.

Every environment variable tollgate reads is declared here (README "Configuration" lists them).
Nothing else in the package reads the environment (``Settings.variable`` reads the one a routing
deployment names).
"""

from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from .alerts.urls import check_webhook_url
from .providers import catalog

# Re-exported from the provider catalog (providers/catalog.py), the one table of provider facts.
PROVIDERS = catalog.PROVIDERS
PROVIDER_ALIASES: dict[str, str] = catalog.ALIASES


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What one provider adapter needs from the settings (secrets stay SecretStr)."""

    name: str
    base_url: str
    model: str
    max_tokens: int
    api_key: SecretStr | None = None
    headers: dict[str, str] = field(default_factory=dict)
    region: str | None = None

    @property
    def configured(self) -> bool:
        """Cloud providers need a key; local ones (ollama, llama.cpp) and Bedrock (IAM) do not."""
        if catalog.spec(self.name).needs_key:
            return self.api_key is not None and bool(self.api_key.get_secret_value())
        return True


def _variables(field_name: str, alias: Any) -> list[str]:
    return [str(choice) for choice in alias.choices] if isinstance(alias, AliasChoices) else [field_name]


def _is_complex(annotation: Any) -> bool:
    """A container type, whose environment value is JSON (as pydantic-settings reads it)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_complex(arg) for arg in typing.get_args(annotation))
    return origin in (dict, list, set, frozenset, tuple)


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # validation then names the variable: "must be a valid dictionary"


class FromEnvironment(BaseModel):
    """The part of pydantic-settings' ``BaseSettings`` tollgate uses, without importing it (~13 ms of every
    cold start). Each field is given to pydantic under its first variable (``validation_alias`` choice):
    the constructor's value for it (keyed by any of its variables or its name, without regard to case),
    else the environment's value of the first of its variables that is set (names matched without regard
    to case; a container field's value is JSON), else its default. Defaults are validated too. One value
    per field, so fields that share a variable (AWS_REGION) each read their own first choice."""

    model_config = ConfigDict(validate_default=True)

    def __init__(self, **values: Any) -> None:
        given = {name.lower(): value for name, value in values.items()}
        environ = {name.lower(): value for name, value in os.environ.items()}
        data: dict[str, Any] = {}
        for field_name, info in type(self).model_fields.items():
            variables = _variables(field_name, info.validation_alias)
            key = variables[0]
            for name in (*variables, field_name):
                if name.lower() in given:
                    data[key] = given.pop(name.lower())
                    break
            else:
                for name in variables:
                    if (raw := environ.get(name.lower())) is not None:
                        data[key] = _json(raw) if _is_complex(info.annotation) else raw
                        break
        super().__init__(**data)


class Settings(FromEnvironment):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    default_provider: str = Field("llama_cpp", validation_alias=_env("TOLLGATE_DEFAULT_PROVIDER"))
    default_max_tokens: int = Field(1024, ge=1, validation_alias=_env("TOLLGATE_DEFAULT_MAX_TOKENS"))
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias=_env("TOLLGATE_MAX_BODY_BYTES"))
    # ``tollgate serve``'s request heads (serve_http.py): request line + headers, header count, seconds
    max_header_bytes: int = Field(
        32768, ge=1024, le=1 << 20, validation_alias=_env("TOLLGATE_MAX_HEADER_BYTES")
    )
    max_headers: int = Field(100, ge=8, le=10000, validation_alias=_env("TOLLGATE_MAX_HEADERS"))
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, validation_alias=_env("TOLLGATE_HEADER_TIMEOUT_SECONDS")
    )
    provider_timeout_seconds: float = Field(
        120.0, gt=0, validation_alias=_env("TOLLGATE_PROVIDER_TIMEOUT_SECONDS")
    )
    provider_connect_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias=_env("TOLLGATE_PROVIDER_CONNECT_TIMEOUT_SECONDS")
    )
    max_connections: int = Field(256, ge=1, validation_alias=_env("TOLLGATE_MAX_CONNECTIONS"))
    # the shared upstream client's transport (upstream_transport.py): aiohttp, or httpx's own httpcore
    http_transport: Literal["aiohttp", "httpcore"] = Field(
        "aiohttp", validation_alias=_env("TOLLGATE_HTTP_TRANSPORT")
    )
    bedrock_max_concurrency: int = Field(32, ge=1, validation_alias=_env("TOLLGATE_BEDROCK_MAX_CONCURRENCY"))
    recent_requests: int = Field(100, ge=1, validation_alias=_env("TOLLGATE_RECENT_REQUESTS"))
    log_level: str = Field("INFO", validation_alias=_env("TOLLGATE_LOG_LEVEL"))

    # state (issue: store)
    store: Literal["sqlite", "dynamodb"] = Field("sqlite", validation_alias=_env("TOLLGATE_STORE"))
    sqlite_path: str = Field("./tollgate.db", validation_alias=_env("TOLLGATE_SQLITE_PATH"))
    table: str = Field("tollgate", validation_alias=_env("TOLLGATE_TABLE"))
    aws_region: str = Field("us-east-1", validation_alias=_env("AWS_REGION", "AWS_DEFAULT_REGION"))
    store_threads: int = Field(16, ge=1, validation_alias=_env("TOLLGATE_STORE_THREADS"))
    key_cache_seconds: float = Field(30.0, ge=0, validation_alias=_env("TOLLGATE_KEY_CACHE_SECONDS"))
    admin_key: SecretStr | None = Field(None, validation_alias=_env("TOLLGATE_ADMIN_KEY"))
    audit_key: SecretStr | None = Field(None, validation_alias=_env("TOLLGATE_AUDIT_KEY"))
    # how old the verification GET /v1/audit reports may be (per process; 0: verified on every call)
    audit_verify_seconds: float = Field(30.0, ge=0, validation_alias=_env("TOLLGATE_AUDIT_VERIFY_SECONDS"))
    session_retention_messages: int = Field(
        24, ge=1, validation_alias=_env("TOLLGATE_SESSION_RETENTION_MESSAGES")
    )
    session_ttl_seconds: int = Field(86400, ge=60, validation_alias=_env("TOLLGATE_SESSION_TTL_SECONDS"))
    # how long a Responses API answer stored with ``store: true`` stays retrievable (OpenAI keeps 30 days)
    response_ttl_seconds: int = Field(
        30 * 86400, ge=60, validation_alias=_env("TOLLGATE_RESPONSE_TTL_SECONDS")
    )
    # the sweep never touches a younger reservation: it must outlast the longest request (Lambda: 15 min)
    reservation_max_age_seconds: int = Field(
        # at most 3 days: a USD budget's counter expires 7 days after its period (store.budget_records)
        1800,
        ge=960,
        le=259_200,
        validation_alias=_env("TOLLGATE_RESERVATION_MAX_AGE_SECONDS"),
    )
    sweep_interval_seconds: float = Field(
        300.0, ge=0, validation_alias=_env("TOLLGATE_SWEEP_INTERVAL_SECONDS")
    )
    pricing_file: str | None = Field(None, validation_alias=_env("TOLLGATE_PRICING_FILE"))

    # budget threshold alerts (tollgate.alerts; docs/alerts.md). The webhook URL is a secret (a Slack-style
    # URL is its own credential); plain http only to loopback, or anywhere with the explicit test switch.
    alert_webhook_allow_http: bool = Field(False, validation_alias=_env("TOLLGATE_ALERT_WEBHOOK_ALLOW_HTTP"))
    alert_webhook_url: SecretStr | None = Field(None, validation_alias=_env("TOLLGATE_ALERT_WEBHOOK_URL"))
    alert_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("TOLLGATE_ALERT_WEBHOOK_SECRET")
    )
    alert_webhook_timeout_seconds: float = Field(
        3.0, gt=0, le=30, validation_alias=_env("TOLLGATE_ALERT_WEBHOOK_TIMEOUT_SECONDS")
    )
    alert_eventbridge: bool = Field(False, validation_alias=_env("TOLLGATE_ALERT_EVENTBRIDGE"))
    alert_max_attempts: int = Field(10, ge=1, le=1000, validation_alias=_env("TOLLGATE_ALERT_MAX_ATTEMPTS"))
    alert_retry_after_seconds: int = Field(
        60, ge=1, le=86_400, validation_alias=_env("TOLLGATE_ALERT_RETRY_AFTER_SECONDS")
    )

    # routing (issue: routing engine): a YAML file or ssm:/name; see engine/routes.py
    config_source: str | None = Field(None, validation_alias=_env("TOLLGATE_CONFIG"))
    config_max_age_seconds: float = Field(
        60.0, ge=1, le=86_400, validation_alias=_env("TOLLGATE_CONFIG_MAX_AGE_SECONDS")
    )
    # the secret's entries that are not settings (a deployment's api_key_env may name one); never from env
    secret_values: dict[str, SecretStr] = Field(
        default_factory=dict, validation_alias=_env("TOLLGATE_INTERNAL_SECRET_VALUES")
    )

    # AWS deployment (issue: deployment)
    secret_arn: str | None = Field(None, validation_alias=_env("TOLLGATE_SECRET_ARN"))
    emf_metrics: bool = Field(False, validation_alias=_env("TOLLGATE_EMF_METRICS"))
    metrics_namespace: str = Field("tollgate", validation_alias=_env("TOLLGATE_METRICS_NAMESPACE"))
    llama_cpp_ecs_cluster: str | None = Field(None, validation_alias=_env("LLAMA_CPP_ECS_CLUSTER"))
    llama_cpp_ecs_service: str | None = Field(None, validation_alias=_env("LLAMA_CPP_ECS_SERVICE"))
    llama_cpp_fallback_provider: str | None = Field(
        None, validation_alias=_env("LLAMA_CPP_FALLBACK_PROVIDER")
    )
    llama_cpp_idle_minutes: int = Field(30, ge=1, validation_alias=_env("LLAMA_CPP_IDLE_MINUTES"))
    llama_cpp_wake_retry_after_seconds: int = Field(
        240, ge=1, validation_alias=_env("LLAMA_CPP_WAKE_RETRY_AFTER_SECONDS")
    )

    # agent loop and built-in tools (issue: wider API)
    tool_calling: bool = Field(True, validation_alias=_env("TOLLGATE_TOOL_CALLING"))
    loop_max_turns_cap: int = Field(32, ge=1, validation_alias=_env("TOLLGATE_LOOP_MAX_TURNS_CAP"))
    loop_stream_progress: bool = Field(True, validation_alias=_env("TOLLGATE_LOOP_STREAM_PROGRESS"))
    tool_exec_enabled: bool = Field(False, validation_alias=_env("TOLLGATE_TOOL_EXEC_ENABLED"))
    tool_exec_timeout_ms: int = Field(15000, ge=1, validation_alias=_env("TOLLGATE_TOOL_EXEC_TIMEOUT_MS"))
    tool_exec_max_output_bytes: int = Field(
        65536, ge=1, validation_alias=_env("TOLLGATE_TOOL_EXEC_MAX_OUTPUT_BYTES")
    )
    # set by the Lambda runtime itself: command execution is refused there whatever the settings say
    lambda_function_name: str | None = Field(None, validation_alias=_env("AWS_LAMBDA_FUNCTION_NAME"))

    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias=_env("OPENAI_BASE_URL"))
    openai_model: str = Field("gpt-4o-mini", validation_alias=_env("OPENAI_MODEL"))
    openai_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("OPENAI_MAX_TOKENS"))

    openrouter_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENROUTER_API_KEY"))
    openrouter_base_url: str = Field(
        "https://openrouter.ai/api/v1", validation_alias=_env("OPENROUTER_BASE_URL")
    )
    openrouter_model: str = Field("openai/gpt-4o-mini", validation_alias=_env("OPENROUTER_MODEL"))
    openrouter_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("OPENROUTER_MAX_TOKENS"))
    openrouter_http_referer: str | None = Field(None, validation_alias=_env("OPENROUTER_HTTP_REFERER"))
    openrouter_app_name: str | None = Field("tollgate", validation_alias=_env("OPENROUTER_APP_NAME"))

    ollama_api_key: SecretStr | None = Field(None, validation_alias=_env("OLLAMA_API_KEY"))
    ollama_base_url: str = Field("http://127.0.0.1:11434", validation_alias=_env("OLLAMA_BASE_URL"))
    ollama_model: str = Field("qwen2.5:7b", validation_alias=_env("OLLAMA_MODEL"))
    ollama_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("OLLAMA_MAX_TOKENS"))

    llama_cpp_api_key: SecretStr | None = Field(None, validation_alias=_env("LLAMA_CPP_API_KEY"))
    llama_cpp_base_url: str = Field("http://127.0.0.1:8080", validation_alias=_env("LLAMA_CPP_BASE_URL"))
    llama_cpp_model: str = Field("smollm2", validation_alias=_env("LLAMA_CPP_MODEL"))
    llama_cpp_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("LLAMA_CPP_MAX_TOKENS"))

    claude_api_key: SecretStr | None = Field(
        None, validation_alias=_env("CLAUDE_API_KEY", "ANTHROPIC_API_KEY")
    )
    claude_base_url: str = Field("https://api.anthropic.com/v1", validation_alias=_env("CLAUDE_BASE_URL"))
    claude_model: str = Field("claude-3-5-haiku-latest", validation_alias=_env("CLAUDE_MODEL"))
    claude_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("CLAUDE_MAX_TOKENS"))
    claude_api_version: str = Field("2023-06-01", validation_alias=_env("CLAUDE_API_VERSION"))

    bedrock_region: str = Field(
        "us-east-1", validation_alias=_env("BEDROCK_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )
    bedrock_model: str = Field("us.amazon.nova-lite-v1:0", validation_alias=_env("BEDROCK_MODEL"))
    bedrock_max_tokens: int | None = Field(None, ge=1, validation_alias=_env("BEDROCK_MAX_TOKENS"))

    @field_validator("default_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        canonical = catalog.canonical(value)
        if canonical is None:
            raise ValueError(f"unknown provider {value!r}; one of {', '.join(sorted(PROVIDER_ALIASES))}")
        return canonical

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        allow_http = bool(info.data.get("alert_webhook_allow_http"))
        check_webhook_url(value.get_secret_value(), allow_http=allow_http)
        return value

    def variable(self, name: str) -> SecretStr | None:
        """A routing deployment's ``api_key_env``: the secret's entry of that name, else the environment's."""
        if name in self.secret_values:
            return self.secret_values[name]
        value = os.environ.get(name)
        return SecretStr(value) if value else None

    def audit_hmac_key(self) -> bytes | None:
        """TOLLGATE_AUDIT_KEY as bytes for HMAC-SHA256; None (plain SHA-256) when unset or empty."""
        return self.audit_key.get_secret_value().encode() or None if self.audit_key else None

    def provider(self, name: str) -> ProviderConfig:
        """The configuration of one canonical provider."""
        cap = getattr(self, f"{name}_max_tokens") or self.default_max_tokens
        common = {"name": name, "model": getattr(self, f"{name}_model"), "max_tokens": cap}
        if name == "bedrock":
            return ProviderConfig(base_url="", region=self.bedrock_region, **common)
        headers: dict[str, str] = {}
        if name == "openrouter":
            if self.openrouter_http_referer:
                headers["HTTP-Referer"] = self.openrouter_http_referer
            if self.openrouter_app_name:
                headers["X-Title"] = self.openrouter_app_name
        if name == "claude":
            headers["anthropic-version"] = self.claude_api_version
        return ProviderConfig(
            base_url=getattr(self, f"{name}_base_url").rstrip("/"),
            api_key=getattr(self, f"{name}_api_key"),
            headers=headers,
            **common,
        )
