"""Which of a client's own request fields may reach an upstream: one list per wire format.

The rule: a client may not choose a dearer price tier, another model, or a larger output than the
reservation bounds (one answer, at most the cap tollgate sends, at the standard price of the model the
key's allow-list admitted). A field that would is dropped, named at DEBUG (never its value); or, where
dropping it would silently change something the client must know about, refused with a 400 naming it.

- OpenAI-compatible chat, legacy completions, embeddings (``upstream_passthrough``): unknown top-level
  fields pass through (Ollama's ``think``, llama.cpp's ``repeat_penalty``, ...), less ``UNSAFE_PASSTHROUGH``.
- OpenAI's own Responses API (``RESPONSES``, the body as the client wrote it): the same drops, and a 400
  for a stored ``prompt`` or ``conversation`` of the operator's account (they bring instructions, input
  and, for a prompt, a model and tools that tollgate never saw; dropping them would lose the request's
  context without a word).
- Anthropic Messages (``MESSAGES``, every unknown top-level field of a /v1/messages request): ``speed``
  (fast mode, a premium price), ``service_tier`` (priority capacity: the operator's account decides) and
  ``fallbacks`` (server-side fallback to other models) are dropped; ``inference_geo`` other than
  ``"global"`` (US-only inference, priced above the standard rate) is a 400, since the client asked for
  where its data is processed and must not be served elsewhere without knowing.
- Bedrock Converse takes none of a client's fields as written (``bedrock_mapping`` builds every argument:
  no ``serviceTier``, ``performanceConfig`` or ``promptVariables``), so it has no list here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest

logger = logging.getLogger(__name__)

# The reservation is sized from the output cap tollgate sends (``max_tokens`` / ``max_completion_tokens``),
# one choice, the standard price of the model that was admitted. Fields that change any of these:
UNSAFE_PASSTHROUGH = frozenset(
    {
        # another output cap: llama.cpp's n_predict wins over max_tokens (-1: unlimited); Ollama's options
        # (num_predict, num_ctx, ...); TGI-style max_new_tokens; the Responses API's max_output_tokens
        "n_predict",
        "num_predict",
        "num_ctx",
        "options",
        "max_new_tokens",
        "max_output_tokens",
        # several outputs billed for one answered: legacy best_of, llama.cpp's n_cmpl (``n`` is a 400)
        "best_of",
        "n_cmpl",
        # a dearer price: OpenAI's service tiers, predicted outputs (rejected tokens billed), paid tools
        "service_tier",
        "prediction",
        "web_search_options",
        "plugins",
        "modalities",
        "audio",
        # OpenRouter routing that can serve another model than the allow-listed one
        "models",
        "route",
        "preset",
    }
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a field is a 400, and the values of it that change nothing (those are dropped instead)."""

    reason: str
    harmless: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class FieldRules:
    """One wire format's unsafe top-level fields: ``dropped`` ones and ``refused`` ones."""

    dropped: frozenset[str]
    refused: Mapping[str, Refusal] = field(default_factory=dict)

    def screen(self, fields: Mapping[str, Any], provider: str) -> dict[str, Any]:
        """``fields`` without the unsafe ones (named at DEBUG); a refused one raises ``BadRequest``."""
        unsafe = set(self.dropped)
        for name, refusal in self.refused.items():
            if name not in fields:
                continue
            if fields[name] not in refusal.harmless:
                raise BadRequest(f"{name} is not accepted by this gateway: {refusal.reason}", param=name)
            unsafe.add(name)
        dropped = sorted(name for name in fields if name in unsafe)
        if dropped:
            logger.debug("%s: dropping pass-through fields: %s", provider, ", ".join(dropped))
        return {name: value for name, value in fields.items() if name not in unsafe}


OPENAI_COMPATIBLE = FieldRules(UNSAFE_PASSTHROUGH)
RESPONSES = FieldRules(
    UNSAFE_PASSTHROUGH,
    {
        "prompt": Refusal(
            "a stored prompt brings its own model, tools and instructions; send them in the request"
        ),
        "conversation": Refusal(
            "a stored conversation adds input the request was not reserved for; "
            "continue with previous_response_id or send the input"
        ),
    },
)
MESSAGES = FieldRules(
    frozenset(
        {
            "service_tier",  # "auto" may draw on priority capacity: the operator's account decides
            "speed",  # "fast": fast mode, a multiple of the standard price
            "fallbacks",  # server-side fallback: a refusal re-run on other models
        }
    ),
    {
        "inference_geo": Refusal(
            "US-only inference is priced above the standard rate; where inference runs is the "
            "operator's setting",
            harmless=("global",),
        ),
    },
)


def upstream_passthrough(fields: Mapping[str, Any], provider: str) -> dict[str, Any]:
    """``fields`` without the unsafe ones (named at DEBUG), for an OpenAI-compatible upstream."""
    return OPENAI_COMPATIBLE.screen(fields, provider)
