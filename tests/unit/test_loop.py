"""The loop engine with a scripted in-process provider and a recording accountant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tollgate.errors import BadRequest, BudgetExceeded, UpstreamError
from tollgate.lifecycle import Outcome
from tollgate.loop import LoopEngine, LoopSpec, OpenTurn, TurnEnd
from tollgate.providers.base import ChatCall, Chunk, Finish, TextDelta, ToolCallDelta, Usage
from tollgate.schemas.openai import ChatCompletionRequest
from tollgate.tools import ToolPolicy

Turn = list[Chunk] | Exception | float  # chunks, an error to raise, or seconds to hang


class Scripted:
    name = "scripted"

    def __init__(self, *turns: Turn) -> None:
        self.turns = list(turns)
        self.calls: list[ChatCall] = []

    async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        self.calls.append(call)
        turn = self.turns.pop(0) if self.turns else [TextDelta("more"), Finish("stop")]
        if isinstance(turn, Exception):
            raise turn
        if isinstance(turn, float):
            await asyncio.sleep(turn)
            return
        for chunk in turn:
            yield chunk

    async def aclose(self) -> None:
        return None


class Recorder:
    def __init__(self, refuse_turn: int | None = None) -> None:
        self.log: list[tuple[str, str, str]] = []
        self.refuse_turn = refuse_turn

    async def begin(self, call: ChatCall) -> None:
        if self.refuse_turn is not None and call.request_id.endswith(f":{self.refuse_turn}"):
            raise BudgetExceeded("no budget")
        self.log.append(("begin", call.request_id, ""))

    async def end(self, call: ChatCall, outcome: Outcome) -> None:
        self.log.append(("end", call.request_id, outcome.status))


class RecordedTurns:
    """``Turns`` over the scripted provider, telling the recorder when each turn begins and ends."""

    def __init__(self, provider: Scripted, recorder: Recorder) -> None:
        self.provider, self.recorder = provider, recorder

    async def open(self, turn: int, call: ChatCall) -> OpenTurn:
        try:
            await self.recorder.begin(call)
        except BudgetExceeded as exc:
            await self.recorder.end(call, Outcome.failed(exc))  # a refused turn ends itself
            raise

        async def end(outcome: Outcome) -> None:
            await self.recorder.end(call, outcome)

        return OpenTurn(call, self.provider.chat(call), end)


def text(*parts: str) -> list[Chunk]:
    return [*(TextDelta(p) for p in parts), Finish("stop"), Usage(10, len(parts))]


def engine(provider: Scripted, recorder: Recorder | None = None, **body: Any) -> LoopEngine:
    request = ChatCompletionRequest.model_validate({"prompt": "go", "loop_mode": "basic", **body})
    spec = LoopSpec.from_request(request, 32)
    assert spec is not None
    call = ChatCall("r", "openai", "m", 50, request)
    turns = RecordedTurns(provider, recorder or Recorder())
    return LoopEngine(spec, call, turns, ToolPolicy(), tool_calling=True)


async def drain(loop: LoopEngine) -> list[Chunk | TurnEnd]:
    return [event async for event in loop.events()]


def test_spec_defaults_and_cap() -> None:
    request = ChatCompletionRequest.model_validate({"prompt": "x", "loop_mode": "agent"})
    assert LoopSpec.from_request(request, 32) == LoopSpec("agent", "DONE", 8)
    assert LoopSpec.from_request(request, 3) == LoopSpec("agent", "DONE", 3)
    assert LoopSpec.from_request(ChatCompletionRequest.model_validate({"prompt": "x"}), 32) is None
    over = request.model_copy(update={"loop_max_turns": 33})
    with pytest.raises(BadRequest) as caught:
        LoopSpec.from_request(over, 32)
    assert caught.value.param == "loop_max_turns"


async def test_marker_stop_accounts_every_turn_once() -> None:
    recorder = Recorder()
    loop = engine(Scripted(text("working"), text("still"), text("all DONE")), recorder)
    events = await drain(loop)
    ends = [e for e in events if isinstance(e, TurnEnd)]
    assert [(e.turn, e.stop_reason) for e in ends] == [(1, None), (2, None), (3, "marker")]
    assert loop.result.usage == Usage(30, 3)
    assert recorder.log == [
        ("begin", "r:1", ""), ("end", "r:1", "ok"),
        ("begin", "r:2", ""), ("end", "r:2", "ok"),
        ("begin", "r:3", ""), ("end", "r:3", "ok"),
    ]  # fmt: skip
    assert loop.result.outcome().answer == {"role": "assistant", "content": "all DONE"}


async def test_max_turns() -> None:
    loop = engine(Scripted(), loop_max_turns=3)
    await drain(loop)
    assert (loop.result.turns, loop.result.stop_reason) == (3, "max_turns")


async def test_error_on_turn_one_is_raised_after_accounting() -> None:
    recorder = Recorder()
    with pytest.raises(UpstreamError):
        await drain(engine(Scripted(UpstreamError("boom")), recorder))
    assert recorder.log == [("begin", "r:1", ""), ("end", "r:1", "upstream_error")]


async def test_error_on_turn_two_keeps_the_first_answer() -> None:
    recorder = Recorder()
    loop = engine(Scripted(text("working"), UpstreamError("boom")), recorder)
    events = await drain(loop)
    assert isinstance(events[-1], TurnEnd) and events[-1].stop_reason == "error"
    assert loop.result.stop_reason == "error" and loop.result.outcome().status == "upstream_error"
    assert loop.result.extension()["error"]["code"] == "upstream_error"
    assert [entry[2] for entry in recorder.log if entry[0] == "end"] == ["ok", "upstream_error"]


async def test_budget_refusal_is_audited_with_nothing_reserved() -> None:
    recorder = Recorder(refuse_turn=2)
    loop = engine(Scripted(text("a"), text("b")), recorder)
    await drain(loop)
    assert recorder.log[-1] == ("end", "r:2", "budget_exceeded")
    assert ("begin", "r:2", "") not in recorder.log
    assert loop.result.stop_reason == "error"


async def test_cancellation_mid_turn_still_ends_the_turn() -> None:
    recorder = Recorder()
    loop = engine(Scripted(text("working"), 10.0), recorder)
    task = asyncio.ensure_future(drain(loop))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert recorder.log[-2:] == [("begin", "r:2", ""), ("end", "r:2", "client_closed")]


async def test_abandoned_iteration_ends_the_turn() -> None:
    recorder = Recorder()
    events = engine(Scripted(text("a", "b", "c")), recorder).events()
    await anext(events)
    await events.aclose()  # what a disconnecting SSE client does
    assert recorder.log == [("begin", "r:1", ""), ("end", "r:1", "client_closed")]


def tool_turn(name: str, arguments: str) -> list[Chunk]:
    return [ToolCallDelta(0, "c1", name, arguments), Finish("tool_calls"), Usage(10, 2)]


async def test_agent_tools_are_run_and_fed_back() -> None:
    provider = Scripted(tool_turn("echo", '{"text": "ping"}'), text("DONE"))
    loop = engine(provider, loop_mode="agent")
    events = await drain(loop)
    first_end = next(e for e in events if isinstance(e, TurnEnd))
    assert first_end.tool_results == [("echo", "ping")] and first_end.marker()["tools"] == ["echo"]
    tool_message = provider.calls[1].request.messages[-1]
    assert (
        tool_message.role == "tool" and tool_message.content == "ping" and tool_message.tool_call_id == "c1"
    )
    assert [t.function.name for t in provider.calls[0].request.tools or []] == ["echo", "utc"]


async def test_basic_mode_owns_no_tools() -> None:
    loop = engine(Scripted(tool_turn("echo", "{}")))
    await drain(loop)
    assert loop.result.stop_reason == "tool_calls"


async def test_kill_switch_offers_no_tools() -> None:
    provider = Scripted(text("DONE"))
    request = ChatCompletionRequest.model_validate({"prompt": "go", "loop_mode": "agent"})
    spec = LoopSpec.from_request(request, 32)
    assert spec is not None
    call = ChatCall("r", "openai", "m", 50, request)
    await drain(LoopEngine(spec, call, RecordedTurns(provider, Recorder()), ToolPolicy(), tool_calling=False))
    assert provider.calls[0].request.tools is None and provider.calls[0].request.tool_choice is None
