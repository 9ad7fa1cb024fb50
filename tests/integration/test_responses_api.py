"""POST /v1/responses (and the stored responses) through the gateway on a real socket, driven by the
official openai SDK, over a fake OpenAI-compatible upstream served as llama.cpp (a non-OpenAI provider,
so everything goes through the chat translation)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests import responses_fuzz
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, AUDIT_KEY, Gateway
from tollgate.config import Settings
from tollgate.store.sqlite import SQLiteStore
from tollgate.wire import compaction

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
NAMESPACE = {
    "type": "namespace",
    "name": "agents",
    "description": "sub-agents",
    "tools": [{"type": "function", "name": "spawn", "parameters": {"type": "object", "properties": {}}}],
}
PATCH = {"type": "custom", "name": "apply_patch", "description": "edit files"}
WEB = {"type": "web_search", "external_web_access": False}


@pytest.fixture
def gw(fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path) -> Gateway:
    settings = Settings(
        default_provider="llama_cpp",
        llama_cpp_base_url=fake_openai.url,
        admin_key=ADMIN_KEY,
        audit_key=AUDIT_KEY,
        key_cache_seconds=0,
        default_max_tokens=64,
        provider_timeout_seconds=5.0,
    )
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(tmp_path / "state.db")))
    return Gateway(server, fake_openai)


def sdk(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=20)


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def post(gw: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/responses", json=body, headers=auth(key), timeout=20)


def sent(gw: Gateway, n: int = -1) -> dict[str, Any]:
    path, _, body = gw.upstream.requests[n]
    assert path == "/v1/chat/completions"
    return body


def test_plain_answer_usage_and_translation(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    response = client.responses.create(
        model="auto", input="hi there", instructions="be brief", max_output_tokens=20, temperature=0.5
    )
    assert response.output_text == "Hello from fake"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens == 11
    assert response.usage.output_tokens == 3 and response.usage.total_tokens == 14
    assert response.instructions == "be brief" and response.max_output_tokens == 20
    body = sent(gw)
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
    ]
    assert body["max_tokens"] == 20 and body["temperature"] == 0.5
    assert not {"input", "instructions", "store", "responses", "include"} & set(body)


def test_streamed_events_in_order_with_usage(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Hel", "lo"])
    client = sdk(gw, gw.new_key("acme"))
    events = list(client.responses.create(model="auto", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1].response
    assert done.output_text == "Hello" and done.usage is not None and done.usage.output_tokens == 2
    assert done.output[0].id == events[2].item.id


def test_stream_helper_gets_the_final_response(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    with client.responses.stream(model="auto", input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "Hello from fake"


def tool_script() -> Script:
    calls = [
        {"id": "call_w", "name": "get_weather", "arguments": ['{"city":', '"Oslo"}']},
        {"id": "call_s", "name": "agents__spawn", "arguments": ["{}"]},
        {"id": "call_p", "name": "apply_patch", "arguments": ['{"input": "*** Begin Patch"}']},
    ]
    return Script(texts=[], tool_calls=calls)


def test_tools_flattened_and_mapped_back(gw: Gateway) -> None:
    gw.upstream.script = tool_script()
    client = sdk(gw, gw.new_key("acme"))
    response = client.responses.create(
        model="auto", input="weather?", tools=[WEATHER, NAMESPACE, PATCH, WEB], tool_choice="auto"
    )
    body = sent(gw)
    names = [t["function"]["name"] for t in body["tools"]]
    assert names == ["get_weather", "agents__spawn", "apply_patch"]  # web_search dropped, no 400
    assert body["tools"][2]["function"]["parameters"]["required"] == ["input"]
    weather, spawn, patch = (item.model_dump() for item in response.output)
    assert weather["type"] == "function_call" and weather["name"] == "get_weather"
    assert json.loads(weather["arguments"]) == {"city": "Oslo"} and weather["call_id"] == "call_w"
    assert spawn["name"] == "spawn" and spawn["namespace"] == "agents"
    assert patch["type"] == "custom_tool_call" and patch["input"] == "*** Begin Patch"


def test_streamed_tool_call_events(gw: Gateway) -> None:
    gw.upstream.script = tool_script()
    client = sdk(gw, gw.new_key("acme"))
    events = list(
        client.responses.create(model="auto", input="w?", tools=[WEATHER, NAMESPACE, PATCH], stream=True)
    )
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(deltas) == '{"city":"Oslo"}{}'
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [d.type for d in done] == ["function_call", "function_call", "custom_tool_call"]
    assert done[2].input == "*** Begin Patch"
    final = events[-1].response
    assert final.status == "completed" and [o.type for o in final.output] == [d.type for d in done]


def test_previous_response_id_continues_a_tool_round_trip(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    gw.upstream.enqueue(
        Script(texts=[], tool_calls=[{"id": "c1", "name": "get_weather", "arguments": ["{}"]}])
    )
    first = client.responses.create(model="auto", input="weather?", tools=[WEATHER], store=True)
    call = first.output[0]
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    second = client.responses.create(
        model="auto", input=[output], tools=[WEATHER], previous_response_id=first.id
    )
    assert second.output_text == "Hello from fake" and second.previous_response_id == first.id
    messages = sent(gw)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "c1" and messages[2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "sunny",
    }


def test_retrieve_input_items_and_delete(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    created = client.responses.create(model="auto", input=[{"role": "user", "content": "hello"}], store=True)
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == "Hello from fake"
    items = client.responses.input_items.list(created.id)
    assert [i.type for i in items.data] == ["message"]
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_store_false_keeps_nothing(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    created = client.responses.create(model="auto", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_json_schema_format(gw: Gateway) -> None:
    client = sdk(gw, gw.new_key("acme"))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    text = {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}}
    client.responses.create(model="auto", input="x", text=text)  # type: ignore[arg-type]
    assert sent(gw)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }


def test_another_tenants_response_is_a_404(gw: Gateway) -> None:
    acme, beta = sdk(gw, gw.new_key("acme")), sdk(gw, gw.new_key("beta"))
    created = acme.responses.create(model="auto", input="secret")
    with pytest.raises(openai.NotFoundError):
        beta.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        beta.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as refused:
        beta.responses.create(model="auto", input="more", previous_response_id=created.id)
    assert refused.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    assert acme.responses.retrieve(created.id).id == created.id


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": [{"type": "telepathy", "content": "x"}]}, 400, "input[0].type"),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, 400, "input"),
        ({"input": "x", "previous_response_id": "resp_missing"}, 404, "previous_response_id"),
        ({"input": [{"role": "wizard", "content": "x"}]}, 400, "input[0].role"),
        ({"input": 7}, 400, "input"),
        ({}, 400, "input"),
        ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_file"}]}]}, 400, None),
        ({"input": "x", "tool_choice": {"type": "function", "name": "nope"}, "tools": [WEATHER]}, 400, None),
        # found by a hostile review: each was a 500
        ({"input": "x", "max_output_tokens": 1e12}, 400, "max_output_tokens"),
        ({"input": "x", "max_output_tokens": 10**12}, 400, "max_output_tokens"),
        ({"input": "x", "model": "m" * 513}, 400, "model"),
        ({"input": [{"type": {"kind": "message"}, "content": "x"}]}, 400, "input[0].type"),
        ({"input": [{"type": ["message"], "content": "x"}]}, 400, "input[0].type"),
        ({"input": [{"role": ["user"], "content": "x"}]}, 400, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": {"t": 1}}]}]}, 400, "input[0].content[0].type"),
        ({"input": [{"role": "user", "content": [{"type": ["text"]}]}]}, 400, "input[0].content[0].type"),
        ({"input": "x", "tools": [NAMESPACE | {"tools": 1.5}]}, 400, "tools[0].tools"),
        ({"input": "x", "tools": [NAMESPACE | {"tools": ["f"]}]}, 400, "tools[0].tools[0]"),
        ({"input": "x", "text": {"format": "json"}}, 400, "text.format"),
        ({"input": "x", "text": {"format": 1.5}}, 400, "text.format"),
    ],
)
def test_bad_input_is_a_clear_4xx(gw: Gateway, body: dict[str, Any], status: int, param: str | None) -> None:
    response = post(gw, gw.new_key("acme"), {"model": "auto", **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"] in ("invalid_request_error", "not_found_error")
    if param is not None:
        assert error["param"] == param


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", "yes"),
        ("stream", 1),
        ("store", "no"),
        ("store", 0),
        ("background", "no"),
        ("parallel_tool_calls", 1),
        ("max_output_tokens", "5"),
        ("max_output_tokens", 5.0),
        ("max_output_tokens", True),
        ("temperature", "1"),
        ("temperature", True),
        ("top_p", "0.5"),
    ],
)
def test_types_are_strict_and_a_400_names_the_field(gw: Gateway, field: str, value: object) -> None:
    """As on the chat endpoint (README "Input limits"): never coerced (``"stream": "yes"`` never streams)."""
    response = post(gw, gw.new_key("acme"), {"model": "auto", "input": "x", field: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and error["message"].startswith(f"{field}: "), error
    assert not gw.upstream.requests


def test_a_float_field_takes_an_integer(gw: Gateway) -> None:
    response = post(gw, gw.new_key("acme"), {"model": "auto", "input": "x", "temperature": 1, "top_p": 1})
    assert response.status_code == 200, response.text
    assert (sent(gw)["temperature"], sent(gw)["top_p"]) == (1, 1)


def test_random_bodies_get_a_2xx_or_a_4xx_json_error_never_a_500(gw: Gateway) -> None:
    """A property test over the HTTP endpoint: a valid body with random values anywhere in it."""
    headers = auth(gw.new_key("acme"))
    with httpx.Client(base_url=gw.url, headers=headers, timeout=20) as client:
        for i, body in enumerate(responses_fuzz.bodies(seed=20261127, n=300)):
            response = client.post("/v1/responses", json=body)
            assert response.status_code < 500, (i, body, response.text)
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["message"] and error["type"], (i, body, response.text)


def test_upstream_failure_mid_stream_is_response_failed(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["a", "b", "c"], fail_after=1)
    client = sdk(gw, gw.new_key("acme"))
    events = list(client.responses.create(model="auto", input="x", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None and events[-1].response.status == "failed"


def test_every_turn_is_charged_and_audited(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 10_000)
    client = sdk(gw, key)
    client.responses.create(model="auto", input="one")
    list(client.responses.create(model="auto", input="two", stream=True))
    pool = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["pools"][0]
    assert pool["used"] == 28 and pool["reserved"] == 0
    entries = gw.get(key, "/v1/audit").json()["entries"]
    assert [e["status"] for e in entries] == ["ok", "ok"]


# ------------------------------------------------------------------------ POST /v1/responses/compact


def codex_history() -> list[dict[str, Any]]:
    """A conversation as Codex CLI sends it for compaction: its context wrapped in tags, real user turns,
    the assistant's answers, and a tool round trip."""

    def user(text: str) -> dict[str, Any]:
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}

    return [
        user("<environment_context>\n  <cwd>/repo</cwd>\n</environment_context>"),
        user("fix the failing test"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "reasoning", "summary": [], "encrypted_content": "opaque"},
        user("and keep the public API"),
    ]


def test_compact_summarizes_with_the_routed_model_and_keeps_the_user_turns(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["Fixed half; ", "API kept."])
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 10_000)
    compacted = sdk(gw, key).responses.compact(
        model="auto", input=codex_history(), instructions="you are codex", extra_body={"tools": [WEATHER]}
    )
    assert compacted.object == "response.compaction" and compacted.id.startswith("resp_")
    *kept, summary = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    assert [(o["role"], o["content"][0]["text"]) for o in kept] == [
        ("user", "fix the failing test"),
        ("user", "and keep the public API"),
    ]
    assert summary["type"] == "compaction" and compaction.summary_of(summary) == "Fixed half; API kept."
    assert (
        compacted.usage.input_tokens == 11 and compacted.usage.output_tokens == 2
    )  # the fake: one per piece
    body = sent(gw)
    assert body["stream"] is False and body["tool_choice"] == "none"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "user", "assistant", "tool", "user", "user"]
    assert body["messages"][-1]["content"] == compaction.COMPACTION_PROMPT
    # charged and audited like any turn; nothing stored to continue from
    pool = gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["pools"][0]
    assert pool["used"] == 13 and pool["reserved"] == 0
    assert [e["status"] for e in gw.get(key, "/v1/audit").json()["entries"]] == ["ok"]
    assert gw.get(key, f"/v1/responses/{compacted.id}").status_code == 404


def test_compacted_history_continues_on_any_provider(gw: Gateway) -> None:
    gw.upstream.script = Script(texts=["the summary"])
    client = sdk(gw, gw.new_key("acme"))
    compacted = client.responses.compact(model="auto", input=codex_history())
    history = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    nxt = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go on"}]}
    gw.upstream.script = Script()
    answer = client.responses.create(model="auto", input=[*history, nxt])
    assert answer.output_text == "Hello from fake"
    messages = sent(gw)["messages"]
    assert [m["content"] for m in messages] == [
        "fix the failing test",
        "and keep the public API",
        compaction.SUMMARY_PREFIX + "the summary",
        "go on",
    ]


def codex_compaction_v2(stream: bool) -> dict[str, Any]:
    """Codex CLI's remote compaction v2: the history and a trigger, on /v1/responses."""
    trigger = {"type": "compaction_trigger"}
    return {"model": "auto", "input": [*codex_history(), trigger], "tools": [WEATHER], "stream": stream}


@pytest.mark.parametrize("stream", [False, True])
def test_a_compaction_trigger_answers_one_compaction_item(gw: Gateway, stream: bool) -> None:
    gw.upstream.script = Script(texts=["Fixed ", "half."])
    key = gw.new_key("acme")
    if stream:
        with httpx.stream(
            "POST", f"{gw.url}/v1/responses", json=codex_compaction_v2(True), headers=auth(key), timeout=20
        ) as response:
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
        assert [e["type"] for e in events] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
        output = events[-1]["response"]["output"]
        assert events[3]["item"] == output[0]
    else:
        output = post(gw, key, codex_compaction_v2(False)).json()["output"]
    assert len(output) == 1 and output[0]["type"] == "compaction"
    assert compaction.summary_of(output[0]) == "Fixed half."
    body = sent(gw)
    assert body["tool_choice"] == "none" and body["messages"][-1]["content"] == compaction.COMPACTION_PROMPT


def test_a_compaction_that_is_not_tollgate_s_is_dropped(gw: Gateway) -> None:
    key = gw.new_key("acme")
    foreign = {"type": "compaction", "encrypted_content": "gAAAA-openai-only"}
    forged = {"type": "compaction", "encrypted_content": compaction.SUMMARY_MARK + "%%%not base64"}
    response = post(gw, key, {"model": "auto", "input": [foreign, forged, {"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    assert [m["content"] for m in sent(gw)["messages"]] == ["hi"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": "x", "stream": True}, 400, "stream"),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, 400, "input"),
        ({}, 400, "input"),
        ({"input": "x", "background": True}, 400, "background"),
    ],
)
def test_compact_bad_input_is_a_clear_4xx(gw: Gateway, body: dict[str, Any], status: int, param: str) -> None:
    headers = {"authorization": f"Bearer {gw.new_key('acme')}"}
    response = httpx.post(f"{gw.url}/v1/responses/compact", json={"model": "auto", **body}, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert not gw.upstream.requests


def test_compact_keeps_the_key_s_budget_and_allow_list(gw: Gateway) -> None:
    refused = gw.new_key("acme", models=["someone-else/model"])
    response = httpx.post(
        f"{gw.url}/v1/responses/compact",
        json={"model": "auto", "input": "x"},
        headers={"authorization": f"Bearer {refused}"},
    )
    assert response.status_code == 403, response.text
    gw.set_budget("acme", "default", 5)
    response = httpx.post(
        f"{gw.url}/v1/responses/compact",
        json={"model": "auto", "input": "x"},
        headers={"authorization": f"Bearer {gw.new_key('acme')}"},
    )
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_exceeded"
    assert not gw.upstream.requests
