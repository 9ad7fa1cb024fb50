"""The agent loop of the seed router (``loop_mode``), shared by the HTTP route and ``tollgate loop``.

The engine calls the model, appends its answer and a continuation turn, and repeats until the answer
contains the marker (``loop_until``, default ``DONE``) or ``loop_max_turns`` is reached. In ``agent`` mode
the built-in tools (``tools.py``) are offered next to the client's own tools; calls to them are executed
here and fed back as ``tool`` messages, while a call to any other tool ends the loop and goes back to the
client as a normal answer.

Every turn is its own upstream call ``{request_id}:{turn}``, opened through ``Turns`` (behind the gateway:
one exchange per turn — reserve, attempts with retries and fallbacks, settle + audit), and the turn's
``finally`` ends it exactly once, shielded, on normal end, upstream error and cancellation alike. A failure
on turn 1 is raised (the client gets a real error status); a later failure ends the loop with
``stop_reason: "error"`` and the last good answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import anyio

from .errors import BadRequest, TollgateError, UpstreamError
from .lifecycle import Outcome
from .providers.base import ChatCall, Chunk, Provider, Usage
from .schemas.openai import ChatCompletionRequest, Message, Tool
from .streaming import ResponseBuilder
from .tools import BUILTIN_TOOLS, ToolPolicy, definitions, run_tool

DEFAULT_MARKER = "DONE"
DEFAULT_MAX_TURNS = 8
CONTINUATION = "Continue. Say {marker} when finished."
StopReason = Literal["marker", "max_turns", "tool_calls", "error"]


@dataclass(frozen=True, slots=True)
class LoopSpec:
    mode: Literal["basic", "agent"]
    until: str = DEFAULT_MARKER
    max_turns: int = DEFAULT_MAX_TURNS

    @classmethod
    def from_request(cls, request: ChatCompletionRequest, cap: int) -> LoopSpec | None:
        """None when the request asks for no loop; over the cap is a 400 (never silently clamped)."""
        if request.loop_mode is None:
            return None
        turns = request.loop_max_turns
        if turns is not None and turns > cap:
            raise BadRequest(
                f"loop_max_turns {turns} is over this gateway's cap of {cap} (TOLLGATE_LOOP_MAX_TURNS_CAP)",
                param="loop_max_turns",
            )
        until = request.loop_until or DEFAULT_MARKER
        return cls(request.loop_mode, until, turns or min(DEFAULT_MAX_TURNS, cap))


@dataclass(frozen=True, slots=True)
class OpenTurn:
    """A turn whose upstream answered: what served it, its chunks (the first one included), and ``end``,
    which the loop calls exactly once (shielded) with the turn's outcome."""

    call: ChatCall
    chunks: AsyncIterator[Chunk]
    end: Callable[[Outcome], Awaitable[None]]


class Turns(Protocol):
    """How a loop's turns reach a model. ``open`` raises a ``TollgateError`` when the turn is refused or
    no attempt answered (and has then ended that turn itself)."""

    async def open(self, turn: int, call: ChatCall) -> OpenTurn: ...


class DirectTurns:
    """For ``tollgate loop``: the provider itself, no store, no budgets."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def open(self, turn: int, call: ChatCall) -> OpenTurn:
        return OpenTurn(call, self.provider.chat(call), _nothing)


async def _nothing(outcome: Outcome) -> None:
    return None


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """A turn boundary: ``stop_reason`` None means the loop goes on."""

    turn: int
    stop_reason: StopReason | None
    tool_results: list[tuple[str, str]] = field(default_factory=list)  # (tool name, result text)
    error: TollgateError | None = None

    def marker(self) -> dict[str, Any]:
        body: dict[str, Any] = {"turn": self.turn, "stop_reason": self.stop_reason}
        if self.tool_results:
            body["tools"] = [name for name, _ in self.tool_results]
        if self.error is not None:
            body["error"] = {"message": self.error.message, "code": self.error.code}
        return body


@dataclass(slots=True)
class LoopResult:
    turns: int = 0
    stop_reason: StopReason | None = None
    last: ResponseBuilder | None = None  # the last completed answer
    last_chunks: list[Chunk] = field(default_factory=list)
    usage: Usage = field(default_factory=lambda: Usage(0, 0))  # the sum over the turns that completed
    error: TollgateError | None = None

    def add(self, builder: ResponseBuilder, chunks: list[Chunk]) -> None:
        self.usage += builder.final_usage()
        self.last, self.last_chunks = builder, chunks

    def outcome(self) -> Outcome:
        answer = self.last.message() if self.last else None
        model = self.last.model if self.last else None
        if self.error is not None:
            return Outcome(self.error.code or "error", self.usage, model, self.error, answer)
        return Outcome("ok", self.usage, model, None, answer)

    def extension(self) -> dict[str, Any]:
        body: dict[str, Any] = {"turns": self.turns, "stop_reason": self.stop_reason}
        if self.error is not None:
            body["error"] = {"message": self.error.message, "code": self.error.code}
        return body


class LoopEngine:
    """One loop (per request, never shared): iterate ``events()``, then read ``result``."""

    def __init__(
        self,
        spec: LoopSpec,
        call: ChatCall,
        turns: Turns,
        policy: ToolPolicy,
        *,
        tool_calling: bool = True,
    ) -> None:
        self.spec, self.call, self.turns = spec, call, turns
        self.policy, self.tool_calling = policy, tool_calling
        self.result = LoopResult()
        self.last_call: ChatCall | None = None  # what served the latest turn
        self.tools = self._tools()
        client_names = {t.function.name for t in call.request.tools or []} if tool_calling else set()
        self.owned = set() if spec.mode == "basic" or not tool_calling else BUILTIN_TOOLS - client_names

    def _tools(self) -> list[Tool] | None:
        if not self.tool_calling:
            return None  # the kill switch: nothing tool-shaped goes upstream
        tools = list(self.call.request.tools or [])
        if self.spec.mode == "agent":
            names = {t.function.name for t in tools}
            tools += [t for t in definitions(self.policy) if t.function.name not in names]
        return tools or None

    def turn_call(self, turn: int, messages: list[Message]) -> ChatCall:
        update: dict[str, Any] = {"messages": list(messages), "tools": self.tools}
        if self.tools is None:
            update["tool_choice"] = None
        request = self.call.request.model_copy(update=update)
        rid = f"{self.call.request_id}:{turn}"
        return replace(self.call, request_id=rid, request=request)

    async def events(self) -> AsyncIterator[Chunk | TurnEnd]:
        """Each turn's chunks as they arrive, then its ``TurnEnd``; the last one carries the stop reason."""
        messages = list(self.call.request.messages)
        for turn in range(1, self.spec.max_turns + 1):
            builder, record = ResponseBuilder(self.turn_call(turn, messages)), list[Chunk]()
            self.result.turns = turn
            try:
                async with aclosing(self._turn(turn, messages, builder, record)) as chunks:
                    async for chunk in chunks:
                        yield chunk
            except TollgateError as exc:
                if self.result.last is None:
                    raise  # nothing to answer with: the client gets the error itself
                self.result.stop_reason, self.result.error = "error", exc
                yield TurnEnd(turn, "error", error=exc)
                return
            self.result.add(builder, record)
            end = await self._after(turn, builder, messages)
            yield end
            if end.stop_reason is not None:
                self.result.stop_reason = end.stop_reason
                return

    async def _turn(
        self, turn: int, messages: list[Message], builder: ResponseBuilder, record: list[Chunk]
    ) -> AsyncGenerator[Chunk, None]:
        """One upstream exchange, ended exactly once whatever happens."""
        opened = await self.turns.open(turn, self.turn_call(turn, messages))
        builder.call, builder.model = opened.call, opened.call.model
        self.last_call = opened.call
        outcome: Outcome | None = None
        try:
            async for chunk in opened.chunks:
                builder.add(chunk)
                record.append(chunk)
                yield chunk
            outcome = builder.outcome()
        except TollgateError as exc:
            outcome = builder.outcome(exc.code or "error", exc)
            raise
        except Exception as exc:
            failure = UpstreamError("internal error in the agent loop", code="internal_error")
            outcome = builder.outcome("internal_error", failure)
            raise failure from exc
        finally:
            with anyio.CancelScope(shield=True):
                await opened.end(outcome or builder.outcome("client_closed"))
                aclose = getattr(opened.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def _after(self, turn: int, builder: ResponseBuilder, messages: list[Message]) -> TurnEnd:
        """Decide whether the loop goes on; if so, append what the next turn needs."""
        answer = builder.message()
        calls: list[dict[str, Any]] = answer.get("tool_calls") or []
        if self.spec.until in "".join(builder.text):
            return TurnEnd(turn, "marker")
        if any(c["function"]["name"] not in self.owned for c in calls):
            return TurnEnd(turn, "tool_calls")
        if turn >= self.spec.max_turns:
            return TurnEnd(turn, "max_turns")
        messages.append(Message.model_validate(answer))
        if not calls:
            messages.append(Message(role="user", content=CONTINUATION.format(marker=self.spec.until)))
            return TurnEnd(turn, None)
        results: list[tuple[str, str]] = []
        for c in calls:
            name = c["function"]["name"]
            text = await run_tool(name, c["function"]["arguments"], self.policy)
            messages.append(Message(role="tool", tool_call_id=c["id"], content=text))
            results.append((name, text))
        return TurnEnd(turn, None, results)
