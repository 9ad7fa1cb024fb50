"""Where requests name code execution containers and answers reveal them (``tollgate.containers``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tollgate import containers, timeutil
from tollgate.containers import ANTHROPIC, OPENAI, Named, Revealed
from tollgate.errors import BadRequest, NotFound
from tollgate.providers.anthropic_response import StreamParser, parse_response
from tollgate.providers.base import ContainerInfo
from tollgate.schemas.anthropic import MessagesRequest
from tollgate.wire.anthropic_messages_request import to_chat
from tollgate.wire.responses import to_chat as responses_to_chat
from tollgate.wire.responses_request import ResponsesRequest

CONTAINER = {"id": "container_011", "expires_at": "2026-12-20T10:00:00Z", "skills": []}


@pytest.mark.parametrize(
    ("container", "named"),
    [
        (None, []),
        ("container_011", [Named(ANTHROPIC, "container_011", "container")]),
        ({"id": "container_011", "skills": []}, [Named(ANTHROPIC, "container_011", "container.id")]),
        ({"skills": [{"type": "anthropic", "skill_id": "pptx"}]}, []),  # a new container
    ],
)
def test_a_messages_request_names_its_container(container: Any, named: list[Named]) -> None:
    assert containers.anthropic_named({} if container is None else {"container": container}) == named


@pytest.mark.parametrize(
    ("container", "param"), [(7, "container"), ("", "container"), ({"id": 7}, "container.id")]
)
def test_a_container_that_is_no_id_is_a_400(container: Any, param: str) -> None:
    with pytest.raises(BadRequest) as refused:
        containers.anthropic_named({"container": container})
    assert refused.value.param == param


def test_a_native_responses_body_names_its_hosted_tools_containers() -> None:
    tools = [
        {"type": "code_interpreter", "container": {"type": "auto"}},  # a new one
        {"type": "code_interpreter", "container": "cntr_a"},
        {"type": "shell", "environment": {"type": "container_auto"}},
        {"type": "shell", "environment": {"type": "container_reference", "container_id": "cntr_b"}},
        {"type": "function", "name": "f", "parameters": {}},
        "not a tool",
    ]
    assert containers.openai_named({"tools": tools}) == [
        Named(OPENAI, "cntr_a", "tools[1].container"),
        Named(OPENAI, "cntr_b", "tools[3].environment.container_id"),
    ]
    assert containers.openai_named({"tools": None, "input": "hi"}) == []
    with pytest.raises(BadRequest) as refused:
        containers.openai_named(
            {"tools": [{"type": "shell", "environment": {"type": "container_reference"}}]}
        )
    assert refused.value.param == "tools[0].environment.container_id"


def test_input_items_from_earlier_answers_name_their_containers() -> None:
    """With ``{"type": "auto"}`` OpenAI works again in an active container an input item names."""
    items = [
        {"type": "message", "role": "user", "content": "again"},
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_a", "code": "1"},
        {
            "type": "shell_call",
            "call_id": "c",
            "environment": {"type": "container_reference", "container_id": "cntr_b"},
        },
        {"type": "shell_call", "call_id": "d", "environment": {"type": "local"}},
    ]
    assert containers.openai_named({"input": items}) == [
        Named(OPENAI, "cntr_a", "input[1].container_id"),
        Named(OPENAI, "cntr_b", "input[2].environment.container_id"),
    ]
    with pytest.raises(BadRequest) as refused:
        containers.openai_named({"input": [{"type": "code_interpreter_call", "container_id": 5}]})
    assert refused.value.param == "input[0].container_id"


def test_answers_reveal_their_containers() -> None:
    assert containers.anthropic_revealed(CONTAINER) == [
        Revealed(ANTHROPIC, "container_011", CONTAINER["expires_at"])
    ]
    assert containers.anthropic_revealed(None) == containers.anthropic_revealed({"id": ""}) == []
    items = [
        {"type": "reasoning", "id": "rs_1"},
        {"type": "code_interpreter_call", "id": "ci_1", "container_id": "cntr_a"},
        {"type": "code_interpreter_call", "id": "ci_2", "container_id": "cntr_a"},
        {"type": "shell_call", "environment": {"type": "container_reference", "container_id": "cntr_b"}},
        None,
    ]
    assert containers.openai_revealed(items) == [Revealed(OPENAI, "cntr_a"), Revealed(OPENAI, "cntr_b")]


def test_the_anthropic_parser_passes_the_container_on_buffered_and_streamed() -> None:
    answer = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "container": CONTAINER}
    assert ContainerInfo(CONTAINER) in parse_response(answer)
    assert not [c for c in parse_response({**answer, "container": None}) if isinstance(c, ContainerInfo)]
    delta = {"delta": {"stop_reason": "end_turn", "container": CONTAINER}, "usage": {"output_tokens": 3}}
    assert ContainerInfo(CONTAINER) in StreamParser().parse_event("message_delta", delta)


def test_a_record_lasts_until_the_providers_expiry_within_bounds() -> None:
    now = timeutil.utc_now()
    soon = timeutil.format_time(now + timedelta(days=2))
    assert containers._expiry(soon) == soon
    for said in (None, "not a time", timeutil.format_time(now - timedelta(days=1)), "2999-01-01T00:00:00Z"):
        kept = timeutil.parse_time(containers._expiry(said)) - now
        assert timedelta(days=30) < kept <= timedelta(seconds=containers.KEEP_SECONDS + 1)


def test_the_parsed_requests_name_their_containers() -> None:
    messages = MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "container": "container_x",
        }
    )
    assert to_chat(messages).named_containers() == [Named(ANTHROPIC, "container_x", "container")]
    body = {
        "model": "openai/gpt-5",
        "input": "hi",
        "tools": [{"type": "code_interpreter", "container": "cntr_y"}],
    }
    native = responses_to_chat(ResponsesRequest.model_validate(body), body)
    assert native.named_containers() == [Named(OPENAI, "cntr_y", "tools[0].container")]
    # continued from a stored response the request is translated: OpenAI's hosted tools do not run
    translated = {**body, "previous_response_id": "resp_1"}
    assert responses_to_chat(ResponsesRequest.model_validate(translated), translated).named_containers() == []


def test_tools_a_tool_search_output_loads_and_file_citations_name_containers() -> None:
    loaded = [
        {"type": "function", "name": "f", "parameters": {"properties": {"container_id": {"type": "string"}}}},
        {"type": "code_interpreter", "container": "cntr_a"},
        {"type": "shell", "environment": {"type": "container_reference", "container_id": "cntr_b"}},
    ]
    cited = {"type": "container_file_citation", "container_id": "cntr_c", "file_id": "cfile_1"}
    text = {"type": "output_text", "text": "see the plot", "annotations": [{"type": "url_citation"}, cited]}
    items = [
        {"type": "tool_search_call", "call_id": "ts_1", "arguments": {}},
        {"type": "tool_search_output", "call_id": "ts_1", "tools": loaded},
        {"type": "message", "role": "assistant", "content": [text]},
    ]
    assert containers.openai_named({"input": items, "tools": [{"type": "tool_search"}]}) == [
        Named(OPENAI, "cntr_a", "input[1].tools[1].container"),
        Named(OPENAI, "cntr_b", "input[1].tools[2].environment.container_id"),
        Named(OPENAI, "cntr_c", "input[2].content[0].annotations[1].container_id"),
    ]
    # a shell tool's environment of another type that carries a container id names it all the same
    odd = {"type": "shell", "environment": {"type": "container_auto", "container_id": "cntr_d"}}
    assert containers.openai_named({"tools": [odd]}) == [
        Named(OPENAI, "cntr_d", "tools[0].environment.container_id")
    ]


class CountingOwners:
    def __init__(self, owners: dict[str, str]) -> None:
        self.owners, self.reads = owners, 0

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        self.reads += 1
        return self.owners.get(container_id)


async def test_the_check_reads_each_container_once_however_often_it_is_named() -> None:
    store = CountingOwners({"cntr_a": "acme", "cntr_b": "acme"})
    named = [Named(OPENAI, "cntr_a", f"input[{i}].container_id") for i in range(10_000)]
    await containers.check(store, "acme", [*named, Named(OPENAI, "cntr_b", "tools[0].container")])  # type: ignore[arg-type]
    assert store.reads == 2
    with pytest.raises(NotFound) as refused:
        await containers.check(store, "beta", named)  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.param) == ("container_not_found", "input[0].container_id")
