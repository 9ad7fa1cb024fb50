"""The prompt part of a reservation: an upper bound on the input tokens a request can be billed, whoever
serves it. Every byte an upstream receives counts as a token (no tokenizer has tokens shorter than a
byte), every image at its provider's per-image bound, plus chat-template framing.

A message can reach an upstream in two forms: OpenAI-shaped (text, name, tool calls and thinking blocks:
every adapter) or, for a Messages client's turn, as the blocks it sent (``anthropic_content``,
``tool_content``: the Anthropic adapter sends those verbatim, documents, server-tool results and images
inside tool results included). A message counts as the larger of the two. A Responses API request that
OpenAI's own /v1/responses may get as the client sent it (``ResponsesExtras.native``: reasoning items,
hosted-tool calls and unknown fields included) counts as the larger of that raw body and its translation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .providers.base import ChatCall
from .schemas.openai import ChatCompletionRequest, Message, Tool
from .schemas.responses import ResponsesChatRequest
from .tokens import estimate_prompt_tokens, estimate_tokens

_PER_MESSAGE_TOKENS = 8
_BASE_TOKENS = 16

# Most tokens one image part can cost, by provider (providers resize images, so the bound is per image,
# whatever its size in bytes). OpenAI tile models: 85 + 170 x 8 tiles = 1,445 (gpt-4o), patch models at most
# 1,536 patches x 2.46 = 3,779; gpt-4o-mini bills 2,833 + 5,667 x 8 tiles = 48,169. Claude: about
# width x height / 750 after resizing to ~1.15 MP, ~1,600. Local vision models: Qwen2-VL's default cap is
# 16,384. Unknown models get their provider's bound, which is always at or above the documented maximum.
_IMAGE_TOKENS: dict[str, int] = {
    "openai": 6_000,
    "openrouter": 6_000,
    "claude": 5_000,
    "bedrock": 6_000,
    "ollama": 16_384,
    "llama_cpp": 16_384,
}
_IMAGE_TOKENS_4O_MINI = 48_169


def image_token_bound(provider: str, model: str) -> int:
    """A safe upper bound on the prompt tokens of one image part sent to ``provider``/``model``."""
    if "4o-mini" in model:
        return _IMAGE_TOKENS_4O_MINI
    return _IMAGE_TOKENS.get(provider, max(_IMAGE_TOKENS.values()))


@dataclass(frozen=True, slots=True)
class Size:
    """Bytes (each one token) and image parts (each at the serving provider's per-image bound)."""

    bytes: int = 0
    images: int = 0

    def __add__(self, other: Size) -> Size:
        return Size(self.bytes + other.bytes, self.images + other.images)

    def at_least(self, other: Size) -> Size:
        """A size no smaller than either, in both parts (so it bounds both forms whatever the image bound)."""
        return Size(max(self.bytes, other.bytes), max(self.images, other.images))


# image parts as clients send them (Messages ``image`` blocks, Responses ``input_image`` parts) -> the field
# holding the image itself, which the per-image bound covers
_IMAGE_FIELDS = {"image": "source", "input_image": "image_url"}


def json_size(value: Any) -> Size:
    """A block (or any JSON value) as a client sent it: every key and every scalar's bytes, and an image
    part as one image (the image itself left out: the per-image bound covers it, whatever its size; its
    other fields count). A base64 ``document`` (a PDF) counts by its encoded length: 4/3 of its
    decoded size, so never below it, and no decoding of untrusted data on the request path. Not covered,
    as no byte count can: a PDF's pages billed as images beside their text (and text inflated from
    compressed streams), and a document the upstream fetches itself (a ``url`` or ``file`` source)."""
    if isinstance(value, dict):
        image = _IMAGE_FIELDS.get(value["type"]) if isinstance(value.get("type"), str) else None
        items = ((k, v) for k, v in value.items() if k != image)
        return sum((Size(len(str(k).encode())) + json_size(v) for k, v in items), Size(0, int(bool(image))))
    if isinstance(value, list | tuple):
        return sum((json_size(item) for item in value), Size())
    if isinstance(value, str):
        return Size(len(value.encode()))
    return Size(len(json.dumps(value, default=str).encode()))


def _shaped(message: Message) -> Size:
    """The OpenAI-shaped form: text, names and ids, tool calls, thinking blocks (Bedrock sends those)."""
    size = len(message.text().encode()) + len((message.name or "").encode())
    size += len((message.tool_call_id or "").encode())
    if message.tool_calls:
        size += sum(
            len(c.id.encode()) + len(c.function.name.encode()) + len(c.function.arguments.encode())
            for c in message.tool_calls
        )
    if message.thinking_blocks:
        size += json_size([block.block() for block in message.thinking_blocks]).bytes
    return Size(size, message.image_count())


def message_size(message: Message) -> Size:
    """The larger of the forms the message can go upstream in (the module's docstring)."""
    shaped = _shaped(message)
    if not message.anthropic_content and not message.tool_content:
        return shaped  # an OpenAI-shaped message has no other form (the common case: no JSON walk)
    native = json_size(message.anthropic_content or []) + json_size(message.tool_content or [])
    return shaped.at_least(native)


def _strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON value (keys left out), an image part's image itself left out."""
    if isinstance(value, dict):
        image = _IMAGE_FIELDS.get(value["type"]) if isinstance(value.get("type"), str) else None
        for key, item in value.items():
            if key != image:
                yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def message_text(message: Message) -> str:
    """The text an upstream reads of a message (for an estimate, not a bound): the blocks a Messages
    client sent where there are some (what an Anthropic upstream gets), else the text, tool calls and
    thinking blocks; images are left out (they count by the image rule)."""
    native = [*(message.anthropic_content or ()), *(message.tool_content or ())]
    if native:
        return " ".join(_strings(native))
    calls = [f"{c.function.name} {c.function.arguments}" for c in message.tool_calls or ()]
    thinking = _strings([block.block() for block in message.thinking_blocks or ()])
    return " ".join([message.text(), *calls, *thinking]).strip()


def tool_json(tool: Tool) -> str:
    """A tool's definition as the upstream gets it: the Messages client's tool as sent, else OpenAI's."""
    return json.dumps(tool.anthropic_tool) if tool.anthropic_tool else tool.model_dump_json(exclude_none=True)


def prompt_estimate(call: ChatCall) -> int:
    """tollgate's estimate of the prompt tokens of what the upstream is sent (not a bound: the usage of a
    request the upstream reported none for, ``/v1/messages/count_tokens`` where it cannot count): every
    message's text in the form it goes upstream (documents, server-tool results, thinking blocks, tool
    calls and results included), the tools' definitions, a structured-output schema (``response_format``,
    Anthropic's ``output_config``), and each image part (user turns and tool results alike) at its
    provider's bound."""
    request = call.request
    messages = request.messages
    tokens = estimate_prompt_tokens(message_text(m) for m in messages)
    if request.tools:
        tokens += estimate_tokens("".join(tool_json(tool) for tool in request.tools))
    schemas = [request.response_format, request.anthropic.output_config if request.anthropic else None]
    tokens += sum(estimate_tokens(json.dumps(schema, default=str)) for schema in schemas if schema)
    images = sum(message_size(m).images for m in messages)
    return tokens + images * image_token_bound(call.provider, call.model)


def _tools_bytes(tools: Iterable[Tool]) -> int:
    """Each tool as the larger of its OpenAI definition and the Messages client's tool as sent."""
    return sum(
        max(
            len(json.dumps(tool.model_dump(exclude_none=True)).encode()),
            json_size(tool.anthropic_tool).bytes if tool.anthropic_tool else 0,
        )
        for tool in tools
    )


def _unmetered_bytes(request: ChatCompletionRequest) -> int:
    """The bytes of what goes upstream beside the messages and tools and may be billed as prompt: a
    structured-output schema (``response_format``, Anthropic's ``output_config``), the fields passed
    through as they are (legacy ``functions``, ``prediction``, Anthropic-only fields), and the Messages
    client's ``thinking``, ``context_management`` and ``metadata`` (``user``) sent as they came."""
    parts: list[Any] = [request.response_format, request.passthrough(), request.user]
    options = request.anthropic
    if options is not None:
        parts += [options.output_config, options.extra, options.thinking, options.context_management]
        parts.append(options.metadata)
    return sum(len(json.dumps(part, default=str).encode()) for part in parts if part)


@dataclass(frozen=True, slots=True)
class PromptBound:
    """What a request's prompt can cost whoever serves it: every prompt byte as a token (the messages in
    their largest form, the tools and every other field an upstream may bill as prompt) plus
    chat-template framing, and how many image parts it holds."""

    tokens: int
    images: int

    @classmethod
    def of(cls, request: ChatCompletionRequest) -> PromptBound:
        messages = request.messages
        sizes = [message_size(m) for m in messages]
        size = Size(
            sum(s.bytes for s in sizes) + _tools_bytes(request.tools or ()) + _unmetered_bytes(request),
            sum(s.images for s in sizes),
        )
        if isinstance(request, ResponsesChatRequest) and request.responses.native is not None:
            size = size.at_least(json_size(request.responses.native))  # OpenAI gets it as it is
        framing = _PER_MESSAGE_TOKENS * len(messages) + _BASE_TOKENS
        return cls(size.bytes + framing, size.images)

    def with_call(self, call: ChatCall) -> int:
        """The upper bound for one upstream call: images at its provider's bound, plus its max_tokens."""
        return self.tokens + self.images * image_token_bound(call.provider, call.model) + call.max_tokens


def reservation_estimate(call: ChatCall) -> int:
    """An upper bound on the tokens a call can use (``PromptBound`` plus the call's own part)."""
    return PromptBound.of(call.request).with_call(call)
