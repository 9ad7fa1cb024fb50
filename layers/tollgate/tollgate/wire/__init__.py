"""Client-facing wire formats: what one endpoint contributes to the shared pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..lifecycle import Outcome
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, StreamEncoder


@dataclass(frozen=True, slots=True)
class WireFormat:
    """Parsing a body into a chat request, rendering the answer, and framing it as SSE."""

    parse: Callable[[bytes], ChatCompletionRequest]
    render: Callable[[ResponseBuilder, Outcome, dict[str, Any]], dict[str, Any]]
    encoder: Callable[[ChatCall], StreamEncoder]
