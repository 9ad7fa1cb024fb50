"""The legacy ``text_completion`` wire format (POST /v1/completions): parse, render, stream encoder.

The body becomes a chat request whose one user message is the prompt, marked as a legacy completion
(``LegacyCompletionRequest``): OpenAI-compatible upstreams (openai, openrouter, ollama, llama.cpp) get a
real ``/completions`` call with ``prompt``; Claude and Bedrock answer it as chat. Routing, budgets,
pricing, audit and streaming are the pipeline's (``api.pipeline.serve``); the handler is
``api.completions``. Errors have the OpenAI error shape (``wire.openai_chat``).

Choices: one prompt per request (a list of more than one prompt is a 400, as is ``n`` other than 1 and
token-id prompts); ``max_tokens`` defaults to the provider's cap, as for chat; unknown fields pass through
to the OpenAI-compatible upstreams (``echo``, ``suffix``, ``logprobs``, ...) and are dropped for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..errors import BadRequest, TollgateError
from ..lifecycle import Outcome
from ..providers.base import ChatCall, Chunk, Finish, ResponseMeta, TextDelta
from ..streaming import ResponseBuilder
from .openai_chat import DONE, sse, usage_body

# Chat-only fields a legacy body cannot carry (they would change what the upstream is asked).
CHAT_ONLY = ("messages", "tools", "tool_choice", "session_id", "loop_mode", "loop_until", "loop_max_turns")


def prompt_text(prompt: Any) -> str:
    """``prompt`` as one string: a string, or a list holding exactly one string."""
    if isinstance(prompt, list):
        if any(not isinstance(item, str) for item in prompt):
            raise BadRequest("prompt: token-id prompts are not supported; send text", param="prompt")
        if len(prompt) != 1:
            raise BadRequest("prompt: send one prompt per request", param="prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string or a list of one string", param="prompt")
    return prompt


def parse(payload: dict[str, Any]) -> dict[str, Any]:
    """A decoded legacy body -> the chat request's fields (validated by the caller)."""
    if "prompt" not in payload:
        raise BadRequest("prompt is required", param="prompt")
    for name in CHAT_ONLY:
        if name in payload:
            raise BadRequest(f"{name} is not a field of /v1/completions", param=name)
    prompt = prompt_text(payload.pop("prompt"))
    return payload | {"messages": [{"role": "user", "content": prompt}], "legacy_prompt": prompt}


def finish_reason(reason: str | None) -> str:
    """``text_completion`` knows stop, length and content_filter."""
    return reason if reason in ("length", "content_filter") else "stop"


def render(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": "".join(builder.text),
        "finish_reason": finish_reason(builder.finish),
        "logprobs": None,
    }
    body: dict[str, Any] = {
        "id": f"cmpl-{builder.call.request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": builder.model,
        "choices": [choice],
        "usage": usage_body(outcome.usage or builder.final_usage()),
    }
    if extension:
        body["tollgate"] = extension
    return body


class CompletionEncoder:
    """``text_completion`` frames, the optional usage frame (choices []), then ``data: [DONE]``."""

    def __init__(self, call: ChatCall, render_error: Callable[[TollgateError], dict[str, Any]]) -> None:
        self.call = call
        self.render_error = render_error
        self.id = f"cmpl-{call.request_id}"
        self.created = int(time.time())
        self.model = call.model

    def _frame(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _text(self, text: str, finish: str | None = None) -> list[bytes]:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return [sse(self._frame([choice]))]

    def start(self) -> list[bytes]:
        return []

    def chunk(self, chunk: Chunk) -> list[bytes]:
        if isinstance(chunk, TextDelta):
            return self._text(chunk.text)
        if isinstance(chunk, Finish):
            return self._text("", finish_reason(chunk.reason))
        if isinstance(chunk, ResponseMeta) and chunk.model:
            self.model = chunk.model
        return []

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]:
        frames = [] if builder.finish_seen else self._text("", "stop")
        if self.call.request.include_usage:
            usage = self._frame([])
            usage["usage"] = usage_body(outcome.usage or builder.final_usage())
            if extension:
                usage["tollgate"] = extension
            frames.append(sse(usage))
        return [*frames, DONE]

    def error(self, error: TollgateError) -> list[bytes]:
        return [sse(self.render_error(error))]
