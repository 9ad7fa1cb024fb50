"""Client-facing wire formats: what one endpoint contributes to the shared pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lifecycle import Outcome
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, StreamEncoder

if TYPE_CHECKING:
    from ..context import AppContext
    from ..keys import Principal
    from ..lifecycle import RequestTracker

# After authentication, before routing: what a format adds once the caller is known (the Responses API's
# stored conversation for ``previous_response_id``); it may set ``tracker.after_finish``.
Bind = Callable[
    ["AppContext", "RequestTracker", "Principal", ChatCompletionRequest], Awaitable[ChatCompletionRequest]
]


@dataclass(frozen=True, slots=True)
class WireFormat:
    """Parsing a body into a chat request, rendering the answer, and framing it as SSE."""

    parse: Callable[[bytes], ChatCompletionRequest]
    render: Callable[[ResponseBuilder, Outcome, dict[str, Any]], dict[str, Any]]
    encoder: Callable[[ChatCall], StreamEncoder]
    bind: Bind | None = None
