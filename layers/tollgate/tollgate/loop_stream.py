"""The agent loop behind the gateway: per-turn ledger accounting, the collected answer and the SSE stream.

Accounting: each turn is its own exchange ``{request_id}:{turn}`` (``ExchangeTurns``: reserve, attempts,
settle + audit); the request's ``RequestTracker`` has no exchange of its own, so its single ``finish`` only
saves the session with the final answer and records metrics/logs: nothing is settled twice, nothing is left
reserved.
All of it happens before ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from .accounting import usd
from .engine.exchange import Exchange
from .engine.prepare import Prepared
from .errors import TollgateError, UpstreamError
from .lifecycle import Outcome, RequestTracker
from .loop import LoopEngine, OpenTurn, TurnEnd
from .providers.base import ChatCall, Chunk
from .streaming import LoopStreamEncoder, with_first

if TYPE_CHECKING:
    from .context import AppContext

logger = logging.getLogger("tollgate.loop")
Event = Chunk | TurnEnd


class ExchangeTurns:
    """One exchange per turn over the request's route (never the session: that is saved once)."""

    def __init__(self, ctx: AppContext, prepared: Prepared, tracker: RequestTracker) -> None:
        self.ctx, self.prepared, self.tracker = ctx, prepared, tracker
        self.cost_micro_usd: int | None = None

    async def open(self, turn: int, call: ChatCall) -> OpenTurn:
        prepared = self.prepared
        exchange = Exchange(
            self.ctx, prepared.booking, prepared.route, call.request, call.request_id, save_session=False
        )
        try:
            if turn > 1:  # a loop may run for long: a key revoked or expired meanwhile ends it here
                await self.ctx.authenticator.recheck(prepared.booking.principal)
            await exchange.reserve()
            first, chunks = await exchange.open()
        except BaseException as exc:
            await exchange.settle_shielded(_failure(exc))  # audited as refused or failed
            raise
        self.tracker.call = exchange.served

        async def end(outcome: Outcome) -> None:
            await exchange.settle_shielded(outcome)
            cost = exchange.settlement.cost_micro_usd if exchange.settlement else None
            if cost is not None:
                self.cost_micro_usd = (self.cost_micro_usd or 0) + cost
                self.tracker.cost_micro_usd = self.cost_micro_usd

        return OpenTurn(exchange.served, with_first(first, chunks), end)

    def extension(self) -> dict[str, Any]:
        return {} if self.cost_micro_usd is None else {"cost_usd": usd(self.cost_micro_usd)}


def _failure(exc: BaseException) -> Outcome:
    if isinstance(exc, TollgateError):
        return Outcome.failed(exc)
    return Outcome("cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error")


async def finish_loop(engine: LoopEngine, turns: ExchangeTurns, tracker: RequestTracker) -> dict[str, Any]:
    """Finish the request once (shielded) and return its ``tollgate`` extension object."""
    with anyio.CancelScope(shield=True):
        tracked = await tracker.finish(engine.result.outcome())
    return engine.result.extension() | turns.extension() | tracked


async def collect_loop(
    engine: LoopEngine,
    turns: ExchangeTurns,
    tracker: RequestTracker,
    disconnected: Callable[[], Awaitable[object]],
) -> dict[str, Any] | None:
    """Run the whole loop (non-streamed); a turn-1 failure is raised to the caller. When
    ``disconnected`` returns first (the client went away), the turn in flight is ended and accounted, no
    later turn starts, the request finishes as ``client_closed`` (as a streamed loop's does) and the
    answer is None: nobody is left to read it."""
    run = asyncio.ensure_future(_drain(engine.events()))
    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait([run, watch], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (run, watch):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if not run.cancelled():
        run.result()  # the loop's own error, if it raised one
        return await finish_loop(engine, turns, tracker)
    with anyio.CancelScope(shield=True):
        await tracker.finish(Outcome("client_closed", engine.result.usage))
    return None


async def _drain(events: AsyncIterator[Event]) -> None:
    try:
        async for _ in events:
            pass
    finally:
        with anyio.CancelScope(shield=True):
            await _aclose(events)  # ends (and accounts) the turn in flight when cancelled


async def loop_sse_stream(
    engine: LoopEngine,
    first: Event,
    events: AsyncIterator[Event],
    turns: ExchangeTurns,
    tracker: RequestTracker,
    encoder: LoopStreamEncoder,
    *,
    progress: bool,
) -> AsyncIterator[bytes]:
    """Each turn's chunks as they arrive (``progress``; otherwise only the final answer, replayed at the
    end), a ``tollgate`` marker chunk per turn boundary, the summed usage chunk, then ``[DONE]``."""
    finished = False
    try:
        for frame in encoder.start():
            yield frame
        async for event in _chain(first, events):
            for frame in _frames(event, encoder, progress):
                yield frame
        if not progress:
            for chunk in engine.result.last_chunks:
                for frame in encoder.chunk(chunk):
                    yield frame
        extension = await finish_loop(engine, turns, tracker)
        finished = True
        assert engine.result.last is not None  # a loop that did not raise completed a turn
        for frame in encoder.end(engine.result.last, engine.result.outcome(), extension):
            yield frame
    except TollgateError as exc:
        finished = await _fail(tracker, exc)
        for frame in encoder.error(exc):
            yield frame
    except Exception:  # a bug must still end the stream with an error event and be recorded
        logger.exception("loop stream failed", extra={"request_id": tracker.request_id})
        failure = UpstreamError("internal error while streaming", code="internal_error")
        finished = await _fail(tracker, failure)
        for frame in encoder.error(failure):
            yield frame
    finally:
        with anyio.CancelScope(shield=True):
            await _aclose(events)  # ends (and accounts) the turn in flight on a client disconnect
            if not finished:
                await tracker.finish(Outcome("client_closed", engine.result.usage))


def _frames(event: Event, encoder: LoopStreamEncoder, progress: bool) -> list[bytes]:
    if isinstance(event, TurnEnd):
        return encoder.marker(event.marker())
    return encoder.chunk(event) if progress else []


async def _fail(tracker: RequestTracker, error: TollgateError) -> bool:
    with anyio.CancelScope(shield=True):
        await tracker.finish(Outcome.failed(error))
    return True


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


async def _aclose(events: AsyncIterator[Event]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
