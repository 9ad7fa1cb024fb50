"""Which unknown request fields may reach an OpenAI-compatible upstream.

Unknown top-level fields pass through (Ollama's ``think``, llama.cpp's ``repeat_penalty``, ...), except the
ones that would make the answer cost more than the reservation bounds or come from another model than the
one the key's allow-list admitted: those are dropped, named at DEBUG (never their values).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

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


def upstream_passthrough(fields: Mapping[str, Any], provider: str) -> dict[str, Any]:
    """``fields`` without the unsafe ones (named at DEBUG)."""
    dropped = sorted(name for name in fields if name in UNSAFE_PASSTHROUGH)
    if dropped:
        logger.debug("%s: dropping pass-through fields: %s", provider, ", ".join(dropped))
    return {name: value for name, value in fields.items() if name not in UNSAFE_PASSTHROUGH}
