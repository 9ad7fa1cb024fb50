"""OpenAI ``/embeddings`` wire protocol (openai, openrouter, ollama, llama.cpp): pure functions.

The gateway always asks the upstream for floats and encodes ``base64`` itself (``tollgate.embeddings``),
so every provider answers both encodings alike.
"""

from __future__ import annotations

from typing import Any

from ..errors import UpstreamError
from ..tokens import estimate_tokens
from .base import EmbeddingCall, EmbeddingResult, Usage, token_count
from .passthrough import upstream_passthrough


def to_embeddings_upstream(call: EmbeddingCall) -> dict[str, Any]:
    body = upstream_passthrough(call.extra, call.provider)
    body.update(model=call.model, input=list(call.inputs), encoding_format="float")
    if call.dimensions is not None:
        body["dimensions"] = call.dimensions
    if call.user:
        body["user"] = call.user
    return body


def _vector(item: Any) -> tuple[int, list[float]]:
    if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
        raise UpstreamError("upstream embeddings item without a float vector")
    return int(item.get("index") or 0), [float(x) for x in item["embedding"]]


def estimated_usage(inputs: tuple[str, ...] | list[str]) -> Usage:
    """For upstreams that report no usage: the house token estimate, marked as such."""
    return Usage(sum(estimate_tokens(text) for text in inputs), 0, estimated=True)


def parse_embeddings(payload: dict[str, Any], call: EmbeddingCall) -> EmbeddingResult:
    """``{"data": [{"index", "embedding"}], "usage"}`` -> vectors in input order."""
    data = payload.get("data")
    count = len(data) if isinstance(data, list) else 0
    if not isinstance(data, list) or count != len(call.inputs):
        raise UpstreamError(f"upstream returned {count} embeddings for {len(call.inputs)} inputs")
    vectors = [vector for _, vector in sorted((_vector(item) for item in data), key=lambda p: p[0])]
    usage = payload.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    counted = token_count(tokens)
    result_usage = Usage(counted, 0) if counted else estimated_usage(call.inputs)
    return EmbeddingResult(vectors=vectors, usage=result_usage, model=payload.get("model") or call.model)
