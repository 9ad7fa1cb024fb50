"""The official openai SDK against /v1/completions and /v1/embeddings on a real socket.

Legacy completions reach an OpenAI-compatible upstream's own /completions (with ``prompt``) and fall
back to chat for Claude and Bedrock; embeddings reach OpenAI's /embeddings and Bedrock's InvokeModel
(Titan, Cohere) through real boto3. Each request is booked, priced and audited like chat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_extra import fake_embedding
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.config import Settings

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


@dataclass
class Setup:
    gateway: ServerThread
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    bedrock: FakeBedrock

    @property
    def sdk(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key="x", max_retries=0)

    def audit(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.gateway.url}/v1/audit", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["chain_valid"] is True
        return list(response.json()["entries"])


@pytest.fixture
def setup(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    anthropic = FakeAnthropic()
    with ServerThread(anthropic) as claude, FakeBedrock() as bedrock:
        for name, value in bedrock.env().items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=f"{fake_openai.url}/v1",  # type: ignore[attr-defined]
            claude_api_key="sk-ant",
            claude_base_url=f"{claude.url}/v1",
            bedrock_model="us.amazon.nova-lite-v1:0",
        )
        yield Setup(start_gateway(settings), fake_openai, anthropic, bedrock)


# ---------------------------------------------------------------------------------------- completions


def test_completion_reaches_legacy_endpoint(setup: Setup) -> None:
    raw = setup.sdk.completions.with_raw_response.create(
        model="gpt-4o-mini", prompt="Say hi", max_tokens=20, stop=["\n"], extra_body={"echo": False}
    )
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.choices[0].text == "Hello from fake"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    path, _, body = setup.openai.requests[-1]
    assert path == "/v1/completions"
    assert body["prompt"] == "Say hi" and body["max_tokens"] == 20 and body["stop"] == ["\n"]
    assert body["echo"] is False and "messages" not in body
    assert raw.headers["x-tollgate-provider"] == "openai"
    assert "x-tollgate-cost-usd" in raw.headers
    entry = setup.audit()[-1]
    assert entry["request_id"] == raw.headers["x-tollgate-request-id"]
    assert (entry["provider"], entry["model"], entry["status"]) == ("openai", "gpt-4o-mini", "ok")
    assert entry["prompt_tokens"] == 11 and entry["cost_micro_usd"] is not None


def test_streamed_completion_with_usage(setup: Setup) -> None:
    setup.openai.script = Script(texts=["a", "b", "c"])
    stream = setup.sdk.completions.create(
        model="gpt-4o-mini", prompt=["one prompt"], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "abc"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    body = setup.openai.requests[-1][2]
    assert body["stream"] is True and body["prompt"] == "one prompt"
    assert setup.audit()[-1]["completion_tokens"] == 3


def test_completion_upstream_error_mid_stream(setup: Setup) -> None:
    setup.openai.script = Script(texts=["a", "b", "c"], fail_after=1)
    response = httpx.post(
        f"{setup.gateway.url}/v1/completions",
        json={"model": "gpt-4o-mini", "prompt": "hi", "stream": True},
        timeout=10,
    )
    frames = [line for line in response.text.splitlines() if line.startswith("data: ")]
    assert '"error"' in frames[-1] and "[DONE]" not in response.text
    assert setup.audit()[-1]["status"] == "upstream_error"


def test_completion_falls_back_to_chat_for_claude(setup: Setup) -> None:
    completion = setup.sdk.completions.create(model="anthropic/claude-3-5-haiku-latest", prompt="Say hi")
    assert completion.choices[0].text == "Hello from fake"
    path, _, body = setup.anthropic.requests[-1]
    assert path == "/v1/messages" and body["messages"][0]["content"][0]["text"] == "Say hi"
    stream = setup.sdk.completions.create(model="anthropic/claude-3-5-haiku-latest", prompt="hi", stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == "Hello from fake"
    assert [e["provider"] for e in setup.audit()] == ["claude", "claude"]


def test_completion_falls_back_to_chat_for_bedrock(setup: Setup) -> None:
    setup.bedrock.script(texts=["Hi", " there"], usage=(9, 2))
    completion = setup.sdk.completions.create(model="bedrock/auto", prompt="Say hi")
    assert completion.choices[0].text == "Hi there"
    assert completion.usage is not None and completion.usage.prompt_tokens == 9
    recorded = setup.bedrock.requests[-1]
    assert recorded.operation == "converse"
    assert recorded.body["messages"] == [{"role": "user", "content": [{"text": "Say hi"}]}]
    chunks = list(setup.sdk.completions.create(model="bedrock/auto", prompt="Say hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hi there"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": "a", "n": 2}, "n"),
        ({}, "prompt"),
        ({"prompt": "a", "messages": []}, "messages"),
    ],
)
def test_completion_bad_requests(setup: Setup, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{setup.gateway.url}/v1/completions", json={"model": "gpt-4o-mini", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert setup.openai.requests == []


# ----------------------------------------------------------------------------------------- embeddings


def test_openai_embeddings_base64_default(setup: Setup) -> None:
    inputs = ["hello world", "second text here"]
    raw = setup.sdk.embeddings.with_raw_response.create(model="text-embedding-3-small", input=inputs)
    result = raw.parse()
    assert [d.embedding for d in result.data] == [fake_embedding(text) for text in inputs]
    assert [d.index for d in result.data] == [0, 1]
    assert result.usage.prompt_tokens == 5 and result.usage.total_tokens == 5
    path, _, body = setup.openai.requests[-1]
    assert path == "/v1/embeddings" and body["input"] == inputs
    assert body["encoding_format"] == "float"  # the gateway encodes base64 itself
    assert raw.headers["x-tollgate-provider"] == "openai" and "x-tollgate-cost-usd" in raw.headers
    entry = setup.audit()[-1]
    assert (entry["provider"], entry["model"], entry["prompt_tokens"]) == (
        "openai",
        "text-embedding-3-small",
        5,
    )
    assert entry["completion_tokens"] == 0 and entry["cost_micro_usd"] == 0  # 5 tokens x $0.02/M


def test_openai_embeddings_float_and_dimensions(setup: Setup) -> None:
    result = setup.sdk.embeddings.create(
        model="openai/text-embedding-3-small", input="one", encoding_format="float", dimensions=4
    )
    assert result.data[0].embedding == fake_embedding("one", 4)
    assert setup.openai.requests[-1][2]["dimensions"] == 4
    raw = httpx.post(
        f"{setup.gateway.url}/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "one", "encoding_format": "float"},
    ).json()
    assert raw["object"] == "list" and raw["data"][0]["object"] == "embedding"


def test_bedrock_titan_embeddings(setup: Setup) -> None:
    inputs = ["alpha beta", "gamma"]
    raw = setup.sdk.embeddings.with_raw_response.create(model=f"bedrock/{TITAN}", input=inputs, dimensions=8)
    result = raw.parse()
    assert [d.embedding for d in result.data] == [fake_embedding(text, 8) for text in inputs]
    assert result.usage.prompt_tokens == 3
    calls = [r for r in setup.bedrock.requests if r.operation == "invoke"]
    assert sorted(((c.model_id, c.body) for c in calls), key=lambda c: c[1]["inputText"]) == [  # concurrent
        (TITAN, {"inputText": "alpha beta", "dimensions": 8}),
        (TITAN, {"inputText": "gamma", "dimensions": 8}),
    ]
    entry = setup.audit()[-1]
    assert (entry["provider"], entry["model"], entry["prompt_tokens"]) == ("bedrock", TITAN, 3)
    assert raw.headers["x-tollgate-cost-usd"] == "0.000000"


def test_bedrock_cohere_embeddings_float(setup: Setup) -> None:
    inputs = ["one two three", "four"]
    result = setup.sdk.embeddings.create(model=f"bedrock/{COHERE}", input=inputs, encoding_format="float")
    assert [d.embedding for d in result.data] == [fake_embedding(text, 12) for text in inputs]
    assert result.usage.prompt_tokens == 4  # Bedrock's input-token header
    (call,) = [r for r in setup.bedrock.requests if r.operation == "invoke"]
    assert call.body == {"texts": inputs, "input_type": "search_document"}
    assert setup.audit()[-1]["prompt_tokens"] == 4


def test_bedrock_cohere_without_token_header_is_estimated(setup: Setup) -> None:
    setup.bedrock.token_header = False
    response = httpx.post(
        f"{setup.gateway.url}/v1/embeddings", json={"model": f"bedrock/{COHERE}", "input": ["one two three"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] == 3
    assert response.json()["tollgate"]["usage_estimated"] is True


def test_bedrock_embedding_error_is_mapped_and_audited(setup: Setup) -> None:
    setup.bedrock.script(error="ThrottlingException")
    response = httpx.post(
        f"{setup.gateway.url}/v1/embeddings", json={"model": f"bedrock/{TITAN}", "input": "x"}, timeout=10
    )
    assert response.status_code == 429
    assert response.headers["x-tollgate-request-id"]
    assert setup.audit()[-1]["status"] == "upstream_rate_limited"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": [[1, 2]]}, "input"),
        ({"model": "text-embedding-3-small", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "anthropic/claude-3-5-haiku-latest", "input": "a"}, "model"),
        ({"model": "bedrock/us.amazon.nova-lite-v1:0", "input": "a"}, "model"),
    ],
)
def test_embedding_bad_requests(setup: Setup, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{setup.gateway.url}/v1/embeddings", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert setup.openai.requests == [] and setup.anthropic.requests == []
    assert [r for r in setup.bedrock.requests if r.operation == "invoke"] == []
