"""The agent loop (``loop_mode``) over HTTP: a JSON answer or an SSE stream with turn markers."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import msgspec
from litestar import Response
from litestar.response import Stream
from litestar.types import Receive

from ..context import AppContext
from ..engine.prepare import Prepared
from ..errors import BadRequest
from ..lifecycle import RequestTracker
from ..loop import LoopEngine, LoopSpec
from ..loop_stream import ExchangeTurns, collect_loop, loop_sse_stream
from ..tools import ToolPolicy
from ..wire import WireFormat
from .headers import SSE_HEADERS, response_headers


async def serve_loop(
    ctx: AppContext, tracker: RequestTracker, prepared: Prepared, wire: WireFormat, receive: Receive
) -> Response[Any]:
    request = prepared.request
    spec = LoopSpec.from_request(request, ctx.settings.loop_max_turns_cap)
    assert spec is not None  # prepare saw loop_mode
    call = tracker.call
    assert call is not None  # prepare named the first candidate
    call = replace(call, request=request)
    turns = ExchangeTurns(ctx, prepared, tracker)
    engine = LoopEngine(
        spec, call, turns, ToolPolicy.from_settings(ctx.settings), tool_calling=ctx.settings.tool_calling
    )
    if call.stream:
        encoder = wire.encoder(call)
        if not hasattr(encoder, "marker"):
            raise BadRequest("loop_mode is not supported on this endpoint", param="loop_mode")
        events = engine.events()
        first = await anext(events)  # a turn-1 failure before any byte gets a real HTTP status
        body = loop_sse_stream(
            engine,
            first,
            events,
            turns,
            tracker,
            encoder,  # type: ignore[arg-type]
            progress=ctx.settings.loop_stream_progress,
        )
        headers = response_headers(tracker.request_id, _served(engine))
        return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
    extension = await collect_loop(engine, turns, tracker, functools.partial(_disconnect, receive))
    if extension is None:  # the client went away: it stopped the loop, and reads nothing
        return Response(b"", status_code=499)
    result = engine.result
    assert result.last is not None
    result.last.response_id = call.request_id
    headers = response_headers(tracker.request_id, _served(engine) | extension)
    content = msgspec.json.encode(wire.render(result.last, result.outcome(), extension))
    return Response(content, media_type="application/json", headers=headers)


async def _disconnect(receive: Receive) -> None:
    """Returns once the client has gone (its body was read already: nothing else arrives)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _served(engine: LoopEngine) -> dict[str, Any]:
    """What served the loop's latest turn (the headers name it)."""
    call = engine.last_call or engine.call
    return {"provider": call.provider, "model": call.model}
