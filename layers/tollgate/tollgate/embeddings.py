"""Embeddings, independent of HTTP: body checks, model defaults, base64 encoding, the response body,
and the chat-shaped request an embeddings exchange is booked with.

An embeddings request goes through the same exchange as chat; its request is the input texts as user
messages, so the reservation is an upper bound from the inputs' UTF-8 bytes (plus the usual per-message
framing, no generated tokens) and the settlement, price and audit entry use the upstream's prompt tokens.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from .accounting import reservation_estimate
from .errors import BadRequest
from .providers.base import ChatCall, EmbeddingCall, EmbeddingResult, Usage
from .schemas.embeddings import MAX_INPUTS, EmbeddingsRequest
from .schemas.openai import ChatCompletionRequest, Message

# The model that "auto" (or no model) means for embeddings; providers not listed need a model.
DEFAULT_MODELS = {"openai": "text-embedding-3-small", "bedrock": "amazon.titan-embed-text-v2:0"}


def check_input(raw: Any) -> None:
    """Before validation: token arrays and empty inputs get a message that says what is wrong."""
    items = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and not raw:
        raise BadRequest("input must not be empty", param="input")
    if any(isinstance(item, int | list) for item in items):
        raise BadRequest("input: token arrays are not supported; send text", param="input")
    if any(item == "" for item in items):
        raise BadRequest("input must not contain empty strings", param="input")
    if len(items) > MAX_INPUTS:
        raise BadRequest(f"input may hold at most {MAX_INPUTS} texts", param="input")


def default_model(provider: str, requested: str | None) -> str | None:
    """The embeddings model for a request whose model (after any provider prefix) is missing or auto."""
    if requested and requested != "auto":
        return None
    model = DEFAULT_MODELS.get(provider)
    if model is None:
        raise BadRequest(f"model is required for embeddings with provider {provider}", param="model")
    return model


def embedding_call(request_id: str, provider: str, model: str, body: EmbeddingsRequest) -> EmbeddingCall:
    return EmbeddingCall(
        request_id=request_id,
        provider=provider,
        model=model,
        inputs=body.inputs,
        dimensions=body.dimensions,
        user=body.user,
        extra=body.passthrough(),
    )


def booking_request(body: EmbeddingsRequest) -> ChatCompletionRequest:
    """The inputs as a chat request (one user message each): what the exchange and its audit entry see."""
    messages = [Message(role="user", content=text) for text in body.inputs]
    return ChatCompletionRequest(model=body.model, messages=messages)


def reservation(request: ChatCompletionRequest) -> int:
    """An upper bound from the inputs' UTF-8 bytes and framing; embeddings generate no tokens."""
    return reservation_estimate(ChatCall("", "", "", 0, request))


def encode_base64(vector: list[float]) -> str:
    """Little-endian float32 bytes, base64-encoded (what the openai SDK decodes)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def decode_base64(data: str) -> list[float]:
    raw = base64.b64decode(data)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def answer_record(result: EmbeddingResult) -> dict[str, Any]:
    """What the audit digest covers: the vectors as float32 bytes (hashed data holds no floats)."""
    return {"embeddings": [encode_base64(vector) for vector in result.vectors]}


def usage_body(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens}


def render(result: EmbeddingResult, encoding: str, model: str, extension: dict[str, Any]) -> dict[str, Any]:
    encode = encode_base64 if encoding == "base64" else list
    body: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector)}
            for i, vector in enumerate(result.vectors)
        ],
        "model": result.model or model,
        "usage": usage_body(result.usage),
    }
    if extension:
        body["tollgate"] = extension
    return body
