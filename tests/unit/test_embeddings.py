"""Embeddings: body checks, base64 encoding, the booking call, and the OpenAI and Bedrock mappings."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from tollgate.api.embeddings import parse
from tollgate.embeddings import (
    answer_record,
    booking_request,
    check_input,
    decode_base64,
    default_model,
    encode_base64,
    render,
    reservation,
)
from tollgate.errors import BadRequest, UpstreamError
from tollgate.providers.base import MAX_TOKEN_COUNT, EmbeddingCall, EmbeddingResult, Usage
from tollgate.providers.bedrock_embeddings import (
    COHERE_BATCH,
    Invocation,
    combine,
    family,
    invoke_requests,
    parse_cohere,
    parse_titan,
    token_count,
)
from tollgate.providers.openai_embeddings import parse_embeddings, to_embeddings_upstream


def ecall(model: str = "m", inputs: tuple[str, ...] = ("a b", "c"), **kwargs: Any) -> EmbeddingCall:
    return EmbeddingCall("r1", "bedrock", model, inputs, **kwargs)


def bodies(call: EmbeddingCall) -> list[dict[str, Any]]:
    requests = invoke_requests(call)
    assert all(r["modelId"] == call.model and r["contentType"] == "application/json" for r in requests)
    return [json.loads(r["body"]) for r in requests]


# ------------------------------------------------------------------------------------------- base64


def test_base64_is_little_endian_float32() -> None:
    vector = [0.5, -1.25, 3.0]
    encoded = encode_base64(vector)
    assert base64.b64decode(encoded) == struct.pack("<3f", *vector)
    assert decode_base64(encoded) == vector


def test_base64_round_trip_rounds_to_float32() -> None:
    vector = [0.1, -0.2, 1e-3]
    assert decode_base64(encode_base64(vector)) == pytest.approx(vector, rel=1e-6)


def test_render_both_encodings() -> None:
    result = EmbeddingResult([[0.5, 0.25]], Usage(3, 0), model="m-up")
    as_float = render(result, "float", "m", {})
    assert as_float == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
        "model": "m-up",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    as_base64 = render(result, "base64", "m", {"cost_usd": "0.000000"})
    assert decode_base64(as_base64["data"][0]["embedding"]) == [0.5, 0.25]
    assert as_base64["tollgate"] == {"cost_usd": "0.000000"}
    assert answer_record(result) == {"embeddings": [encode_base64([0.5, 0.25])]}  # no floats to hash


# ------------------------------------------------------------------------------------ request checks


@pytest.mark.parametrize("value", [[], "", ["a", ""], [1, 2], [[1, 2]], ["x"] * 2049])
def test_bad_inputs(value: Any) -> None:
    with pytest.raises(BadRequest) as info:
        check_input(value)
    assert info.value.param == "input"


def test_parse() -> None:
    body = parse(b'{"input": "hi", "model": "m", "pool": "p", "provider": "openai", "extra_field": 1}')
    assert body.inputs == ("hi",) and body.encoding_format == "float"
    assert body.passthrough() == {"extra_field": 1}
    with pytest.raises(BadRequest):
        parse(b'{"model": "m"}')


def test_default_models() -> None:
    assert default_model("openai", None) == "text-embedding-3-small"
    assert default_model("bedrock", "auto") == "amazon.titan-embed-text-v2:0"
    assert default_model("openai", "text-embedding-3-large") is None
    with pytest.raises(BadRequest):
        default_model("ollama", None)


def test_booking_reserves_an_upper_bound_from_the_input_bytes() -> None:
    body = parse(b'{"model": "m", "input": ["h\xc3\xa9llo", "x"]}')
    request = booking_request(body)
    assert [m.content for m in request.messages] == ["héllo", "x"]
    assert reservation(request) >= len("héllo".encode()) + 1
    assert reservation(request) < 100  # no max_tokens: embeddings generate nothing


# ------------------------------------------------------------------------------------ OpenAI-compatible


def test_openai_body_asks_for_floats() -> None:
    call = EmbeddingCall("r", "openai", "m", ("a",), dimensions=4, user="u", extra={"x": 1})
    assert to_embeddings_upstream(call) == {
        "x": 1,
        "model": "m",
        "input": ["a"],
        "encoding_format": "float",
        "dimensions": 4,
        "user": "u",
    }


def test_openai_body_drops_routing_and_price_fields() -> None:
    """OpenRouter's ``models`` / ``route`` would let an embeddings call reach a model the key may not use."""
    risky = {"models": ["other/model"], "route": "fallback", "service_tier": "priority", "options": {}}
    call = EmbeddingCall("r", "openrouter", "m", ("a",), extra={"x": 1, **risky})
    assert to_embeddings_upstream(call) == {"x": 1, "model": "m", "input": ["a"], "encoding_format": "float"}


def test_openai_parse_orders_by_index_and_estimates_missing_usage() -> None:
    call = EmbeddingCall("r", "ollama", "m", ("one two", "three"))
    payload = {"data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1]}]}
    result = parse_embeddings(payload, call)
    assert result.vectors == [[1.0], [2.0]]
    assert result.usage.estimated and result.usage.prompt_tokens > 0
    with_usage = parse_embeddings(payload | {"usage": {"prompt_tokens": 7}}, call)
    assert with_usage.usage == Usage(7, 0)
    with pytest.raises(UpstreamError):
        parse_embeddings({"data": [{"index": 0, "embedding": [1.0]}]}, call)


# -------------------------------------------------------------------------------------------- Bedrock


def test_families() -> None:
    assert family("amazon.titan-embed-text-v2:0") == "titan"
    assert family("amazon.titan-embed-text-v1") == "titan-v1"
    assert family("us.cohere.embed-v4:0") == "cohere-v4"
    assert family("cohere.embed-multilingual-v3") == "cohere"
    with pytest.raises(BadRequest) as info:
        family("anthropic.claude-3-5-haiku-20241022-v1:0")
    assert info.value.param == "model"


def test_titan_one_invocation_per_text() -> None:
    assert bodies(ecall("amazon.titan-embed-text-v2:0", dimensions=256)) == [
        {"inputText": "a b", "dimensions": 256},
        {"inputText": "c", "dimensions": 256},
    ]
    with pytest.raises(BadRequest):
        invoke_requests(ecall("amazon.titan-embed-text-v1", dimensions=256))


def test_cohere_batches() -> None:
    texts = tuple(f"t{i}" for i in range(COHERE_BATCH + 1))
    batches = bodies(ecall("cohere.embed-english-v3", texts))
    assert [len(b["texts"]) for b in batches] == [COHERE_BATCH, 1]
    assert batches[0]["input_type"] == "search_document" and "embedding_types" not in batches[0]
    (v4,) = bodies(ecall("cohere.embed-v4:0", dimensions=512))
    assert v4 == {
        "texts": ["a b", "c"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 512,
    }
    with pytest.raises(BadRequest):
        invoke_requests(ecall("cohere.embed-english-v3", dimensions=512))


def test_parse_titan_and_cohere_shapes() -> None:
    assert parse_titan({"embedding": [0.5, 1], "inputTextTokenCount": 3}) == ([0.5, 1.0], 3)
    assert parse_cohere({"embeddings": [[1.0], [2.0]], "response_type": "embeddings_floats"}) == [
        [1.0],
        [2.0],
    ]
    assert parse_cohere({"embeddings": {"float": [[3.0]]}}) == [[3.0]]
    with pytest.raises(UpstreamError):
        parse_titan({"embedding": None})
    with pytest.raises(UpstreamError):
        parse_cohere({"embeddings": {"int8": [[1]]}})


def test_combine_usage() -> None:
    titan = ecall("amazon.titan-embed-text-v2:0")
    answers = [
        Invocation({"embedding": [1.0], "inputTextTokenCount": 2}),
        Invocation({"embedding": [2.0], "inputTextTokenCount": 1}),
    ]
    assert combine(titan, answers) == EmbeddingResult([[1.0], [2.0]], Usage(3, 0), titan.model)
    cohere = ecall("cohere.embed-english-v3")
    reported = combine(cohere, [Invocation({"embeddings": [[1.0], [2.0]]}, token_count=5)])
    assert reported.usage == Usage(5, 0)
    estimated = combine(cohere, [Invocation({"embeddings": [[1.0], [2.0]]})])
    assert estimated.usage.estimated and estimated.usage.prompt_tokens > 0
    with pytest.raises(UpstreamError):
        combine(cohere, [Invocation({"embeddings": [[1.0]]}, token_count=1)])


def test_token_count_header() -> None:
    assert token_count({"x-amzn-bedrock-input-token-count": "12"}) == 12
    assert token_count({}) is None
    assert token_count({"x-amzn-bedrock-input-token-count": "n/a"}) is None


def test_huge_or_odd_embedding_counts_are_clamped_never_a_failure() -> None:
    call = EmbeddingCall("r", "openai", "m", ("one",))
    payload: dict[str, Any] = {"data": [{"index": 0, "embedding": [1.0]}]}
    for reported in (1e20, float("inf"), 10**30):
        usage = parse_embeddings(payload | {"usage": {"prompt_tokens": reported}}, call).usage
        assert usage == Usage(MAX_TOKEN_COUNT, 0)
    assert parse_titan({"embedding": [1.0], "inputTextTokenCount": float("inf")})[1] == MAX_TOKEN_COUNT
    assert parse_titan({"embedding": [1.0], "inputTextTokenCount": "n/a"})[1] == 0
    assert token_count({"x-amzn-bedrock-input-token-count": "9" * 30}) == MAX_TOKEN_COUNT
    assert token_count({"x-amzn-bedrock-input-token-count": "-5"}) == 0
