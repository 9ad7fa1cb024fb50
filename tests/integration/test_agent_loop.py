"""The seed router's extensions on /v1/chat/completions: prompt, the kill switch, and the agent loop
(every turn budgeted and audited as {request_id}:{turn}), against a scripted fake upstream."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore

GatewayFactory = Callable[..., Gateway]
LOOP = {"loop_mode": "basic"}


@pytest.fixture
def make_gw(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> GatewayFactory:
    def make(**overrides: Any) -> Gateway:
        settings = gateway_settings(fake_openai, **overrides)
        store = SQLiteStore(str(tmp_path / f"state{len(fake_openai.requests)}.db"))
        return Gateway(start_gateway(settings, include_admin=True, store=store), fake_openai)

    return make


@pytest.fixture
def gw(make_gw: GatewayFactory) -> Gateway:
    return make_gw()


def three_turns(fake: FakeOpenAI) -> None:
    fake.enqueue(
        Script(texts=["working"]), Script(texts=["still ", "working"]), Script(texts=["all ", "DONE"])
    )


def tool_call(name: str, arguments: str, call_id: str = "call_1") -> Script:
    return Script(texts=[], tool_calls=[{"id": call_id, "name": name, "arguments": [arguments]}])


def audit_entries(gw: Gateway, key: str) -> dict[str, dict[str, Any]]:
    entries = gw.get(key, "/v1/audit").json()["entries"]
    return {e["request_id"]: e for e in entries}


def pool(gw: Gateway) -> dict[str, Any]:
    return dict(gw.admin("GET", "/budgets", params={"tenant": "acme"}).json()["pools"][0])


def test_prompt_is_one_user_message_and_excludes_messages(gw: Gateway) -> None:
    response = gw.chat(None, {"prompt": "hi there", "messages": None})
    assert response.status_code == 400  # both fields present (even null) is ambiguous
    both = httpx.post(f"{gw.url}/v1/chat/completions", json={"prompt": "a", "messages": []}, timeout=10)
    error = both.json()["error"]
    assert both.status_code == 400 and "messages" in error["message"] and "prompt" in error["message"]
    neither = httpx.post(f"{gw.url}/v1/chat/completions", json={"model": "gpt-4o-mini"}, timeout=10)
    assert neither.status_code == 400 and neither.json()["error"]["param"] == "messages"
    ok = httpx.post(f"{gw.url}/v1/chat/completions", json={"prompt": "hi there"}, timeout=10)
    assert ok.status_code == 200
    upstream = gw.upstream.requests[-1][2]
    assert upstream["messages"] == [{"role": "user", "content": "hi there"}] and "prompt" not in upstream


def test_loop_finishes_on_the_marker_with_every_turn_accounted(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 100_000)
    three_turns(gw.upstream)
    response = gw.chat(key, LOOP)
    assert response.status_code == 200, response.text
    body, rid = response.json(), response.headers["x-tollgate-request-id"]
    assert body["choices"][0]["message"]["content"] == "all DONE"
    assert body["id"] == f"chatcmpl-{rid}"
    assert body["tollgate"]["turns"] == 3 and body["tollgate"]["stop_reason"] == "marker"
    assert body["usage"]["prompt_tokens"] == 33 and body["usage"]["completion_tokens"] == 5
    second = gw.upstream.requests[1][2]
    assert second["messages"][1:] == [
        {"role": "assistant", "content": "working"},
        {"role": "user", "content": "Continue. Say DONE when finished."},
    ]
    assert not any(k.startswith("loop_") for k in second)  # extensions never go upstream
    entries = audit_entries(gw, key)
    assert sorted(entries) == [f"{rid}:1", f"{rid}:2", f"{rid}:3"]
    assert all(e["status"] == "ok" for e in entries.values())
    assert pool(gw)["reserved"] == 0 and pool(gw)["used"] == 33 + 5


def test_a_client_that_leaves_a_buffered_loop_stops_it(gw: Gateway) -> None:
    """Nobody reads the answer any more: the turn in flight is ended and charged, no later one starts."""
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 100_000)
    slow = [Script(texts=["working"], initial_delay=0.6) for _ in range(4)]
    gw.upstream.enqueue(*slow)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **LOOP},
            headers={"authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(5, read=0.9),  # leaves during turn 2
        )
    time.sleep(2.0)  # a loop that went on would have started turns 3 and 4 by now
    assert len(gw.upstream.requests) == 2
    entries = audit_entries(gw, key)
    assert [entries[k]["status"] for k in sorted(entries)] == ["ok", "cancelled"]  # before its answer
    assert pool(gw)["reserved"] == 0


def test_loop_stops_at_max_turns_and_the_cap_is_a_400(make_gw: GatewayFactory) -> None:
    gw = make_gw(loop_max_turns_cap=4)
    response = gw.chat(None, {**LOOP, "loop_max_turns": 2})
    assert response.json()["tollgate"].items() >= {"turns": 2, "stop_reason": "max_turns"}.items()
    assert len(gw.upstream.requests) == 2
    over = gw.chat(None, {**LOOP, "loop_max_turns": 5})
    assert over.status_code == 400 and over.json()["error"]["param"] == "loop_max_turns"
    unknown = gw.chat(None, {"loop_mode": "wander"})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "loop_mode"
    assert len(gw.upstream.requests) == 2  # refused before any upstream call


def test_custom_marker(gw: Gateway) -> None:
    gw.upstream.enqueue(Script(texts=["DONE but not finished"]), Script(texts=["FIN"]))
    body = gw.chat(None, {**LOOP, "loop_until": "FIN"}).json()
    assert body["tollgate"]["turns"] == 2
    assert gw.upstream.requests[1][2]["messages"][-1]["content"] == "Continue. Say FIN when finished."


def test_upstream_error_on_turn_two_settles_and_audits_both_turns(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 100_000)
    gw.upstream.enqueue(Script(texts=["working"]), Script(status=500))
    response = gw.chat(key, LOOP)
    assert response.status_code == 200
    body, rid = response.json(), response.headers["x-tollgate-request-id"]
    assert body["choices"][0]["message"]["content"] == "working"
    assert body["tollgate"]["stop_reason"] == "error" and body["tollgate"]["turns"] == 2
    entries = audit_entries(gw, key)
    assert entries[f"{rid}:1"]["status"] == "ok"
    assert entries[f"{rid}:2"]["status"] == body["tollgate"]["error"]["code"] != "ok"
    failed = entries[f"{rid}:2"]  # a failed call is charged as any failed request is: with its estimate
    used = 11 + 1 + failed["prompt_tokens"] + failed["completion_tokens"]
    assert pool(gw)["reserved"] == 0 and pool(gw)["used"] == used


def test_upstream_error_on_turn_one_is_the_error_itself(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.upstream.enqueue(Script(status=500))
    response = gw.chat(key, LOOP)
    assert response.status_code == 502
    entries = audit_entries(gw, key)
    assert len(entries) == 1
    ((request_id, entry),) = entries.items()
    assert request_id.endswith(":1") and entry["status"] != "ok"
    assert pool(gw)["reserved"] == 0


def test_budget_refusal_on_a_later_turn_ends_the_loop(gw: Gateway) -> None:
    key = gw.new_key("acme")
    gw.set_budget("acme", "default", 150)  # one turn reserves ~101 tokens, uses 12
    response = gw.chat(key, LOOP)
    tollgate = response.json()["tollgate"]
    assert tollgate["stop_reason"] == "error" and tollgate["error"]["code"] == "budget_exceeded"
    assert pool(gw)["reserved"] == 0


def test_a_key_revoked_during_a_loop_ends_it_before_the_next_turn(gw: Gateway) -> None:
    created = gw.admin("POST", "/keys", json={"tenant": "acme"}).json()
    gw.upstream.enqueue(Script(texts=["working"], initial_delay=1.0), Script(texts=["all DONE"]))
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        running = executor.submit(gw.chat, created["key"], LOOP)
        deadline = time.monotonic() + 10
        while not gw.upstream.requests and time.monotonic() < deadline:  # turn 1 is at the upstream
            time.sleep(0.02)
        assert gw.admin("POST", f"/keys/{created['key_id']}/revoke").status_code == 200
        response = running.result(timeout=20)
    tollgate = response.json()["tollgate"]
    assert tollgate["stop_reason"] == "error" and tollgate["error"]["code"] == "key_revoked"
    assert len(gw.upstream.requests) == 1  # turn 2 never reached the upstream
    rid = response.headers["x-tollgate-request-id"]
    entries = audit_entries(gw, gw.new_key("acme"))  # the tenant's log, read with another of its keys
    statuses = {request_id: entry["status"] for request_id, entry in entries.items()}
    assert statuses == {f"{rid}:1": "ok", f"{rid}:2": "key_revoked"}
    assert pool(gw)["reserved"] == 0


def test_agent_mode_runs_echo_and_feeds_the_result_back(gw: Gateway) -> None:
    gw.upstream.enqueue(tool_call("echo", '{"text": "ping"}'), Script(texts=["got it, DONE"]))
    body = gw.chat(None, {"loop_mode": "agent"}).json()
    assert body["tollgate"]["turns"] == 2 and body["tollgate"]["stop_reason"] == "marker"
    first, second = gw.upstream.requests[0][2], gw.upstream.requests[1][2]
    offered = {t["function"]["name"] for t in first["tools"]}
    assert offered == {"echo", "utc"}  # cmd and bash are offered only where they may run
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "echo"
    assert second["messages"][-1] == {"role": "tool", "content": "ping", "tool_call_id": "call_1"}


def test_agent_mode_runs_utc(gw: Gateway) -> None:
    gw.upstream.enqueue(tool_call("utc", "{}"), Script(texts=["DONE"]))
    gw.chat(None, {"loop_mode": "agent"})
    result = gw.upstream.requests[1][2]["messages"][-1]
    assert result["role"] == "tool"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", result["content"])


def test_cmd_is_refused_unless_enabled(gw: Gateway) -> None:
    gw.upstream.enqueue(tool_call("cmd", '{"argv": ["/bin/echo", "hi"]}'), Script(texts=["DONE"]))
    gw.chat(None, {"loop_mode": "agent"})
    assert gw.upstream.requests[1][2]["messages"][-1]["content"].startswith("refused")


def test_cmd_runs_when_enabled(make_gw: GatewayFactory) -> None:
    gw = make_gw(tool_exec_enabled=True)
    gw.upstream.enqueue(tool_call("cmd", '{"argv": ["/bin/echo", "hi"]}'), Script(texts=["DONE"]))
    gw.chat(None, {"loop_mode": "agent"})
    assert {t["function"]["name"] for t in gw.upstream.requests[0][2]["tools"]} == {
        "echo",
        "utc",
        "cmd",
        "bash",
    }
    assert gw.upstream.requests[1][2]["messages"][-1]["content"] == "exit code 0\nhi\n"


def test_cmd_is_refused_on_lambda_even_when_enabled(make_gw: GatewayFactory) -> None:
    gw = make_gw(tool_exec_enabled=True, lambda_function_name="tollgate-chat")
    gw.upstream.enqueue(tool_call("cmd", '{"argv": ["/bin/echo", "hi"]}'), Script(texts=["DONE"]))
    gw.chat(None, {"loop_mode": "agent"})
    assert "lambda" in gw.upstream.requests[1][2]["messages"][-1]["content"].lower()


def test_a_client_tool_call_ends_the_loop(gw: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    gw.upstream.enqueue(tool_call("get_weather", '{"city": "Oslo"}'))
    body = gw.chat(None, {"loop_mode": "agent", "tools": tools}).json()
    assert body["tollgate"].items() >= {"turns": 1, "stop_reason": "tool_calls"}.items()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    assert {t["function"]["name"] for t in gw.upstream.requests[0][2]["tools"]} == {
        "get_weather",
        "echo",
        "utc",
    }


def test_kill_switch_strips_tools(make_gw: GatewayFactory) -> None:
    gw = make_gw(tool_calling=False)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    gw.chat(None, {"tools": tools, "tool_choice": "auto", "parallel_tool_calls": True})
    upstream = gw.upstream.requests[-1][2]
    assert "tools" not in upstream and "tool_choice" not in upstream and "parallel_tool_calls" not in upstream
    gw.upstream.enqueue(Script(texts=["DONE"]))
    gw.chat(None, {"loop_mode": "agent", "tools": tools})
    assert "tools" not in gw.upstream.requests[-1][2]


def sse_events(response: httpx.Response) -> list[Any]:
    frames = [
        line.removeprefix("data: ") for line in response.text.split("\n\n") if line.startswith("data: ")
    ]
    return [f if f == "[DONE]" else json.loads(f) for f in frames]


def test_streaming_loop_marks_turns_and_accounts_before_done(gw: Gateway) -> None:
    key = gw.new_key("acme")
    three_turns(gw.upstream)
    response = gw.chat(key, {**LOOP, "stream": True, "stream_options": {"include_usage": True}})
    events, rid = sse_events(response), response.headers["x-tollgate-request-id"]
    assert events[-1] == "[DONE]"
    markers = [e["tollgate"] for e in events[:-1] if "tollgate" in e and "usage" not in e]
    assert markers == [
        {"turn": 1, "stop_reason": None},
        {"turn": 2, "stop_reason": None},
        {"turn": 3, "stop_reason": "marker"},
    ]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert text == "workingstill workingall DONE"
    final = events[-2]
    assert final["usage"]["prompt_tokens"] == 33 and final["tollgate"]["turns"] == 3
    assert len({e["id"] for e in events[:-1]}) == 1
    assert sorted(audit_entries(gw, key)) == [f"{rid}:1", f"{rid}:2", f"{rid}:3"]


def test_streaming_without_progress_sends_only_the_final_answer(make_gw: GatewayFactory) -> None:
    gw = make_gw(loop_stream_progress=False)
    three_turns(gw.upstream)
    events = sse_events(gw.chat(None, {**LOOP, "stream": True}))
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert text == "all DONE"
    assert [e["tollgate"]["turn"] for e in events[:-1] if "tollgate" in e] == [1, 2, 3]


def test_loop_session_saves_the_final_answer_once(gw: Gateway) -> None:
    three_turns(gw.upstream)
    gw.chat(None, {**LOOP, "session_id": "s1", "messages": [{"role": "user", "content": "go"}]})
    gw.chat(None, {"session_id": "s1", "messages": [{"role": "user", "content": "again"}]})
    assert gw.upstream.requests[-1][2]["messages"] == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "all DONE"},
        {"role": "user", "content": "again"},
    ]


def test_openai_sdk_with_extra_body(gw: Gateway) -> None:
    three_turns(gw.upstream)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "go"}],
        extra_body={"loop_mode": "basic", "loop_max_turns": 5},
    )
    assert completion.choices[0].message.content == "all DONE"
    assert completion.model_extra is not None
    assert completion.model_extra["tollgate"]["stop_reason"] == "marker"
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "go"}],
        stream=True,
        extra_body={"loop_mode": "basic", "loop_max_turns": 2},
    )
    chunks = list(stream)
    assert [
        c.model_extra["tollgate"]["turn"] for c in chunks if c.model_extra and "tollgate" in c.model_extra
    ] == [
        1,
        2,
    ]
