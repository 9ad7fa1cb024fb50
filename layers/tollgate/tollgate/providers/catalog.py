"""Every provider's facts in one place: canonical name, aliases, wire protocol, the variables that
configure it, and whether it is local (free, no key). Settings, routing, the registry, pricing and
diagnostics read this table instead of checking names themselves. Pure data: no imports of tollgate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Wire = Literal["openai", "anthropic", "bedrock"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str  # canonical
    aliases: tuple[str, ...]  # every name a client or a setting may use, the canonical one included
    wire: Wire
    key_variable: str | None  # the API key's variable; None: no key (IAM, or a local server)
    base_url_variable: str | None  # None: the SDK's own endpoint config (Bedrock)
    model_variable: str
    local: bool = False  # runs on the operator's hardware: priced at 0, no key needed
    api_prefix: str = ""  # between the base URL and the OpenAI paths: ollama/llama.cpp serve them under /v1

    @property
    def needs_key(self) -> bool:
        """Cloud providers refuse calls without a key; local servers and Bedrock (IAM) do not need one."""
        return self.key_variable is not None and not self.local


CATALOG: tuple[ProviderSpec, ...] = (
    ProviderSpec("openai", ("openai",), "openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"),
    ProviderSpec(
        "openrouter",
        ("openrouter",),
        "openai",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "OPENROUTER_MODEL",
    ),
    ProviderSpec(
        "ollama",
        ("ollama", "ollama_qwen", "qwen"),
        "openai",
        "OLLAMA_API_KEY",
        "OLLAMA_BASE_URL",
        "OLLAMA_MODEL",
        local=True,
        api_prefix="/v1",
    ),
    ProviderSpec(
        "llama_cpp",
        ("llama_cpp", "llama.cpp"),
        "openai",
        "LLAMA_CPP_API_KEY",
        "LLAMA_CPP_BASE_URL",
        "LLAMA_CPP_MODEL",
        local=True,
        api_prefix="/v1",
    ),
    ProviderSpec(
        "claude", ("claude", "anthropic"), "anthropic", "CLAUDE_API_KEY", "CLAUDE_BASE_URL", "CLAUDE_MODEL"
    ),
    ProviderSpec("bedrock", ("bedrock",), "bedrock", None, None, "BEDROCK_MODEL"),
)

SPECS: dict[str, ProviderSpec] = {spec.name: spec for spec in CATALOG}
PROVIDERS: tuple[str, ...] = tuple(SPECS)
ALIASES: dict[str, str] = {alias: spec.name for spec in CATALOG for alias in spec.aliases}
LOCAL_PROVIDERS: frozenset[str] = frozenset(spec.name for spec in CATALOG if spec.local)


def canonical(name: str) -> str | None:
    """The canonical name for any alias (case and surrounding spaces ignored), or None."""
    return ALIASES.get(name.strip().lower())


def spec(name: str) -> ProviderSpec:
    return SPECS[name]
