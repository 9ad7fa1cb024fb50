"""FakeBedrock's ``POST /model/{id}/invoke`` for embeddings models, in the real shapes.

- Titan Text Embeddings (``amazon.titan-embed-text-*``): ``{"inputText", "dimensions"?, "normalize"?}`` ->
  ``{"embedding": [...], "inputTextTokenCount": n, "embeddingsByType": {"float": [...]}}``.
- Cohere Embed (``cohere.embed-*``): ``{"texts": [...], "input_type", "embedding_types"?}`` ->
  ``{"embeddings": [[...]], "id", "response_type": "embeddings_floats", "texts"}``, or with
  ``embedding_types``: ``{"embeddings": {"float": [[...]]}, "response_type": "embeddings_by_type", ...}``.

Every answer carries ``X-Amzn-Bedrock-Input-Token-Count`` as Bedrock's InvokeModel does, unless
``TOKEN_HEADER`` is switched off (to test the estimate path).
"""

from __future__ import annotations

import uuid
from typing import Any

from .openai_extra import fake_embedding, fake_tokens

TITAN_DIMENSIONS = 16  # the real default is 1024; a short vector keeps the tests readable
COHERE_DIMENSIONS = 12


def invoke(model_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
    """(status, JSON answer, input-token count for the header) for one InvokeModel call."""
    bare = model_id.split(".", 1)[1] if model_id.startswith(("us.", "eu.", "apac.", "global.")) else model_id
    if bare.startswith("amazon.titan-embed-text"):
        return titan(body)
    if bare.startswith("cohere.embed"):
        return cohere(body)
    return 400, {"message": f"model {model_id} is not an embeddings model in this fake"}, None


def titan(body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        return 400, {"message": "inputText is required"}, None
    vector = fake_embedding(text, int(body.get("dimensions") or TITAN_DIMENSIONS))
    tokens = fake_tokens(text)
    answer = {"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": {"float": vector}}
    return 200, answer, tokens


def cohere(body: dict[str, Any]) -> tuple[int, dict[str, Any], int | None]:
    texts = body.get("texts")
    if not isinstance(texts, list) or len(texts) > 96 or "input_type" not in body:
        return 400, {"message": "texts (at most 96) and input_type are required"}, None
    vectors = [fake_embedding(text, int(body.get("output_dimension") or COHERE_DIMENSIONS)) for text in texts]
    by_type = bool(body.get("embedding_types"))
    answer = {
        "id": str(uuid.uuid4()),
        "texts": texts,
        "embeddings": {"float": vectors} if by_type else vectors,
        "response_type": "embeddings_by_type" if by_type else "embeddings_floats",
    }
    return 200, answer, sum(fake_tokens(text) for text in texts)
