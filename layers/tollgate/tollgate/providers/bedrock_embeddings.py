"""Bedrock embeddings through ``InvokeModel``: pure functions, no I/O and no boto3 import.

- Amazon Titan Text Embeddings (``amazon.titan-embed-text-v2:0``, ``-v1``): one invocation per input text;
  usage is the sum of ``inputTextTokenCount``. ``dimensions`` is sent to v2 (256, 512 or 1024).
- Cohere Embed (``cohere.embed-english-v3``, ``cohere.embed-multilingual-v3``, ``cohere.embed-v4:0``):
  one invocation per batch of at most 96 texts, ``input_type: search_document``; usage is Bedrock's
  ``x-amzn-bedrock-input-token-count`` header when present, else the house estimate (marked estimated).
  ``dimensions`` is sent to v4 as ``output_dimension``; v3 has a fixed size (400 if asked otherwise).

Model ids may carry an inference-profile prefix (``us.``, ``eu.``, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import BadRequest, UpstreamError
from .base import MAX_TOKEN_COUNT, EmbeddingCall, EmbeddingResult, Usage
from .base import token_count as upstream_count
from .openai_embeddings import estimated_usage

COHERE_BATCH = 96
TOKEN_COUNT_HEADER = "x-amzn-bedrock-input-token-count"  # noqa: S105 (a header name)
_REGION_PREFIX = re.compile(r"^(us|eu|apac|au|ca|jp|us-gov|global)\.")
Family = Literal["titan", "titan-v1", "cohere", "cohere-v4"]


@dataclass(frozen=True, slots=True)
class Invocation:
    """What one ``invoke_model`` call returned: the decoded body and the input-token header (if any)."""

    body: Mapping[str, Any]
    token_count: int | None = None


def family(model: str) -> Family:
    bare = _REGION_PREFIX.sub("", model)
    if bare.startswith("amazon.titan-embed-text-v1"):
        return "titan-v1"
    if bare.startswith("amazon.titan-embed-text"):
        return "titan"
    if bare.startswith("cohere.embed-v4"):
        return "cohere-v4"
    if bare.startswith("cohere.embed"):
        return "cohere"
    raise BadRequest(
        f"bedrock model {model!r} is not a supported embeddings model "
        "(amazon.titan-embed-text-*, cohere.embed-*)",
        param="model",
    )


def titan_body(text: str, dimensions: int | None, kind: Family) -> dict[str, Any]:
    body: dict[str, Any] = {"inputText": text}
    if dimensions is not None:
        if kind == "titan-v1":
            raise BadRequest(
                "amazon.titan-embed-text-v1 has a fixed size: leave dimensions out", param="dimensions"
            )
        body["dimensions"] = dimensions
    return body


def cohere_body(texts: list[str], dimensions: int | None, kind: Family) -> dict[str, Any]:
    body: dict[str, Any] = {"texts": texts, "input_type": "search_document"}
    if kind == "cohere-v4":
        body["embedding_types"] = ["float"]
        if dimensions is not None:
            body["output_dimension"] = dimensions
    elif dimensions is not None:
        raise BadRequest("Cohere Embed v3 has a fixed size: leave dimensions out", param="dimensions")
    return body


def invoke_requests(call: EmbeddingCall) -> list[dict[str, Any]]:
    """Keyword arguments for each ``invoke_model`` call this request needs, in input order."""
    kind = family(call.model)
    if kind in ("titan", "titan-v1"):
        bodies = [titan_body(text, call.dimensions, kind) for text in call.inputs]
    else:
        texts = list(call.inputs)
        batches = [texts[i : i + COHERE_BATCH] for i in range(0, len(texts), COHERE_BATCH)]
        bodies = [cohere_body(batch, call.dimensions, kind) for batch in batches]
    return [
        {
            "modelId": call.model,
            "body": json.dumps(body),
            "contentType": "application/json",
            "accept": "application/json",
        }
        for body in bodies
    ]


def _floats(raw: Any, what: str) -> list[float]:
    if not isinstance(raw, list) or not all(isinstance(x, int | float) for x in raw):
        raise UpstreamError(f"bedrock {what} without a float vector")
    return [float(x) for x in raw]


def parse_titan(body: Mapping[str, Any]) -> tuple[list[float], int]:
    """``{"embedding": [...], "inputTextTokenCount": n}`` -> (vector, tokens)."""
    return _floats(body.get("embedding"), "Titan answer"), upstream_count(body.get("inputTextTokenCount"))


def parse_cohere(body: Mapping[str, Any]) -> list[list[float]]:
    """``{"embeddings": [[...]]}`` (v3 floats) or ``{"embeddings": {"float": [[...]]}}`` (by type)."""
    embeddings = body.get("embeddings")
    if isinstance(embeddings, Mapping):
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        raise UpstreamError("bedrock Cohere answer without float embeddings")
    return [_floats(vector, "Cohere answer") for vector in embeddings]


def combine(call: EmbeddingCall, invocations: list[Invocation]) -> EmbeddingResult:
    """The invocations' answers (in request order) -> one result with usage."""
    if family(call.model) in ("titan", "titan-v1"):
        parsed = [parse_titan(invocation.body) for invocation in invocations]
        vectors = [vector for vector, _ in parsed]
        usage = Usage(sum(tokens for _, tokens in parsed), 0)
    else:
        vectors = [vector for invocation in invocations for vector in parse_cohere(invocation.body)]
        counts = [invocation.token_count for invocation in invocations]
        reported = all(count is not None for count in counts)
        usage = Usage(sum(c or 0 for c in counts), 0) if reported else estimated_usage(call.inputs)
    if len(vectors) != len(call.inputs):
        raise UpstreamError(f"bedrock returned {len(vectors)} embeddings for {len(call.inputs)} inputs")
    return EmbeddingResult(vectors=vectors, usage=usage, model=call.model)


def token_count(headers: Mapping[str, Any]) -> int | None:
    """Bedrock's input-token header (boto3 lowercases header names), clamped at ``MAX_TOKEN_COUNT``;
    None when absent or not a number."""
    value = headers.get(TOKEN_COUNT_HEADER)
    try:
        return max(0, min(int(value), MAX_TOKEN_COUNT)) if value is not None else None
    except (TypeError, ValueError):
        return None
