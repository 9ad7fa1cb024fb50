"""The internal request of the Responses API (``POST /v1/responses``): the chat request plus what the
Responses format needs to render, store and continue it, and the original body for an upstream that speaks
the Responses API itself (``native``). Parsing lives in ``wire.responses_request``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import containers
from ..tool_fees import ToolUses
from .openai import ChatCompletionRequest


class ToolOrigin(BaseModel):
    """What a flattened function is to the client: a function (maybe in a namespace) or a custom tool."""

    model_config = ConfigDict(defer_build=True)

    kind: Literal["function", "custom"] = "function"
    name: str
    namespace: str | None = None


class ResponsesExtras(BaseModel):
    """What the Responses format needs beyond the chat request: to render, store and continue."""

    model_config = ConfigDict(defer_build=True)

    tools: dict[str, ToolOrigin] = Field(default_factory=dict)  # flattened name -> origin
    store: bool = True
    previous_response_id: str | None = None
    instructions: str | None = None
    input_items: list[dict[str, Any]] = Field(default_factory=list)
    echo: dict[str, Any] = Field(default_factory=dict)  # request fields the response object repeats
    # the client's body, for OpenAI's own /v1/responses (None: translate, e.g. with previous_response_id)
    native: dict[str, Any] | None = None
    compaction: bool = False  # the answer is a summary, given back as one ``compaction`` item
    # the billed hosted tool calls ``native`` may run (its ``max_tool_calls``) and their kinds (``tool_fees``)
    hosted: ToolUses | None = None


class ResponsesChatRequest(ChatCompletionRequest):
    """The internal request, carrying the Responses extras (a declared field: never sent upstream)."""

    responses: ResponsesExtras = Field(default_factory=ResponsesExtras)

    def named_containers(self) -> list[containers.Named]:
        """Those a native body's hosted tools name (a translated request runs no hosted tool)."""
        native = self.responses.native
        hosted = containers.openai_named(native) if native else []
        return [*super().named_containers(), *hosted]

    def tool_uses(self) -> dict[str, ToolUses]:
        """The billed tool uses the request may run: a native body's hosted ones, which only OpenAI's own
        /v1/responses runs."""
        hosted = self.responses.hosted
        return super().tool_uses() | ({"openai": hosted} if hosted else {})
