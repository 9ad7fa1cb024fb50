"""A code execution container is its tenant's (``tollgate.containers``): the container an answer worked in
is recorded under the caller's tenant, and a request that names a container another tenant was given (or
one tollgate never gave out) is a 404 ``container_not_found`` before any upstream call, the same answer
for both. Through the real anthropic and openai SDKs, buffered and streamed, against fake upstreams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.server import ServerThread
from tests.integration.state_helpers import Gateway
from tests.integration.test_web_search_fees import priced_gateway

CODE_EXECUTION = {"type": "code_execution_20250825", "name": "code_execution"}
CONTAINER = {"id": "container_011CVx", "expires_at": "2099-01-01T00:00:00Z", "skills": []}
INTERPRETER = {"type": "code_interpreter", "container": {"type": "auto"}}


@pytest.fixture
def gw(tmp_path: Path, start_gateway: Callable[..., ServerThread]) -> Iterator[Gateway]:
    rates = {"input": "1", "output": "2"}
    prices = {"claude": {"claude-sonnet-4-5": rates}, "openai": {"gpt-5": rates}}
    with priced_gateway(tmp_path, start_gateway, prices, "claude") as (server, claude, native):
        gateway = Gateway(server, claude)  # type: ignore[arg-type]
        gateway.native = native  # type: ignore[attr-defined]
        yield gateway


def claude(gw: Gateway, tenant: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=gw.new_key(tenant), max_retries=0)


def gpt(gw: Gateway, tenant: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.new_key(tenant), max_retries=0)


def ask(**extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "run some code"}]
    return {"model": "claude/claude-sonnet-4-5", "max_tokens": 100, "messages": messages, **extra}


def test_a_messages_container_is_passed_on_and_reused_by_its_tenant_only(gw: Gateway) -> None:
    gw.upstream.container = CONTAINER  # type: ignore[attr-defined]
    acme, beta = claude(gw, "acme"), claude(gw, "beta")
    buffered = acme.messages.create(**ask(tools=[CODE_EXECUTION]))
    assert buffered.container is not None and buffered.container.id == CONTAINER["id"]
    # the tenant works in it again; the upstream gets the container as the client named it
    acme.messages.create(**ask(tools=[CODE_EXECUTION], container=CONTAINER["id"]))
    acme.messages.create(**ask(tools=[CODE_EXECUTION], container={"id": CONTAINER["id"]}))
    assert [body.get("container") for _, _, body in gw.upstream.requests] == [
        None,
        CONTAINER["id"],
        {"id": CONTAINER["id"]},
    ]
    # another tenant that learnt the id is refused before any upstream call, as for an id never given out
    for tenant_client, container in ((beta, CONTAINER["id"]), (acme, "container_never_given")):
        with pytest.raises(anthropic.NotFoundError) as refused:
            tenant_client.messages.create(**ask(tools=[CODE_EXECUTION], container=container))
        assert refused.value.status_code == 404
        assert f"no container with id {container!r}" in str(refused.value)
    assert len(gw.upstream.requests) == 3


def test_a_streamed_messages_answer_carries_its_container_and_records_it(gw: Gateway) -> None:
    gw.upstream.container = CONTAINER  # type: ignore[attr-defined]
    acme, beta = claude(gw, "acme"), claude(gw, "beta")
    with acme.messages.stream(**ask(tools=[CODE_EXECUTION])) as stream:
        final = stream.get_final_message()
    assert final.container is not None and final.container.id == CONTAINER["id"]
    acme.messages.create(**ask(container=CONTAINER["id"]))
    with pytest.raises(anthropic.NotFoundError):
        beta.messages.create(**ask(container=CONTAINER["id"]))
    assert len(gw.upstream.requests) == 2


def test_a_native_responses_container_is_its_tenants_buffered_and_streamed(gw: Gateway) -> None:
    native = gw.native  # type: ignore[attr-defined]
    acme, beta = gpt(gw, "acme"), gpt(gw, "beta")
    native.container = "cntr_buffered"
    answer = acme.responses.create(model="openai/gpt-5", input="plot it", tools=[INTERPRETER])
    assert [item.container_id for item in answer.output if item.type == "code_interpreter_call"] == [
        "cntr_buffered"
    ]
    native.container = "cntr_streamed"
    events = list(acme.responses.create(model="openai/gpt-5", input="plot", tools=[INTERPRETER], stream=True))
    assert events[-1].type == "response.completed"
    for container in ("cntr_buffered", "cntr_streamed"):
        tool = {"type": "code_interpreter", "container": container}
        acme.responses.create(model="openai/gpt-5", input="again", tools=[tool])
        assert native.requests[-1][2]["tools"] == [tool]
        with pytest.raises(openai.NotFoundError) as refused:
            beta.responses.create(model="openai/gpt-5", input="theirs", tools=[tool])
        error = refused.value.body
        assert error["code"] == "container_not_found" and error["param"] == "tools[0].container"  # type: ignore[index]
    # the hosted shell tool names a container the same way
    shell = {"type": "shell", "environment": {"type": "container_reference", "container_id": "cntr_buffered"}}
    with pytest.raises(openai.NotFoundError):
        beta.responses.create(model="openai/gpt-5", input="ls", tools=[shell])
    assert len(native.requests) == 4


def test_an_input_item_cannot_lead_auto_into_another_tenants_container(gw: Gateway) -> None:
    """With ``{"type": "auto"}`` OpenAI works again in an active container that a ``code_interpreter_call``
    item of the input names: replaying another tenant's item is refused like naming its container."""
    native = gw.native  # type: ignore[attr-defined]
    acme, beta = gpt(gw, "acme"), gpt(gw, "beta")
    native.container = "cntr_acme"
    answer = acme.responses.create(model="openai/gpt-5", input="plot it", tools=[INTERPRETER])
    ran = [item.model_dump() for item in answer.output if item.type == "code_interpreter_call"]
    replay: list[Any] = [{"role": "user", "content": "plot it"}, *ran, {"role": "user", "content": "again"}]
    acme.responses.create(model="openai/gpt-5", input=replay, tools=[INTERPRETER])
    with pytest.raises(openai.NotFoundError) as refused:
        beta.responses.create(model="openai/gpt-5", input=replay, tools=[INTERPRETER])
    assert refused.value.body["param"] == "input[1].container_id"  # type: ignore[index]
    assert len(native.requests) == 2


def test_tools_loaded_by_a_tool_search_output_and_replayed_shell_calls_are_checked_too(gw: Gateway) -> None:
    """A ``tool_search_output`` input item loads tools as ``tools`` does, and a ``shell_call`` replays the
    container it ran in: another tenant's container there is refused like one named in ``tools``."""
    native = gw.native  # type: ignore[attr-defined]
    acme, beta = gpt(gw, "acme"), gpt(gw, "beta")
    native.container = "cntr_acme"
    acme.responses.create(model="openai/gpt-5", input="plot it", tools=[INTERPRETER])
    reference = {"type": "container_reference", "container_id": "cntr_acme"}
    searched: list[Any] = [
        {"type": "tool_search_call", "call_id": "ts_1", "arguments": {"query": "py"}, "status": "completed"},
        {"type": "tool_search_output", "call_id": "ts_1", "status": "completed", "tools": [
            {"type": "code_interpreter", "container": "cntr_acme"},
        ]},
        {"role": "user", "content": "run it"},
    ]  # fmt: skip
    shell_call = {"type": "shell_call", "call_id": "sh_1", "status": "completed", "environment": reference}
    replayed: list[Any] = [{"role": "user", "content": "ls"}, {**shell_call, "action": {"commands": ["ls"]}}]
    for given, param in (
        (searched, "input[1].tools[0].container"),
        (replayed, "input[1].environment.container_id"),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            beta.responses.create(model="openai/gpt-5", input=given, tools=[{"type": "tool_search"}])
        assert refused.value.body["param"] == param  # type: ignore[index]
        acme.responses.create(model="openai/gpt-5", input=given, tools=[{"type": "tool_search"}])
        assert native.requests[-1][2]["input"] == given  # passed on natively, as the client sent it
    assert len(native.requests) == 3


def test_a_container_another_tenant_holds_stays_theirs_when_an_answer_names_it(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """An upstream that answers one tenant in another's container (it cannot have been asked to) changes
    nothing: the container stays its tenant's, and the gateway logs it."""
    gw.upstream.container = CONTAINER  # type: ignore[attr-defined]
    acme, beta = claude(gw, "acme"), claude(gw, "beta")
    acme.messages.create(**ask(tools=[CODE_EXECUTION]))
    with caplog.at_level(logging.WARNING):
        beta.messages.create(**ask(tools=[CODE_EXECUTION]))
    assert "container_held_by_another_tenant" in caplog.text
    with pytest.raises(anthropic.NotFoundError):
        beta.messages.create(**ask(container=CONTAINER["id"]))
    acme.messages.create(**ask(container=CONTAINER["id"]))


def test_a_container_that_is_no_id_is_a_400(gw: Gateway) -> None:
    acme = claude(gw, "acme")
    with pytest.raises(anthropic.BadRequestError) as refused:
        acme.messages.create(**ask(container={"id": 42}))
    assert "container.id must be a container id" in str(refused.value)
    assert gw.upstream.requests == []
