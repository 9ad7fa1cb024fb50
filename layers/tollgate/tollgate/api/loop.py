"""The agent loop (``loop_mode``) over HTTP: a JSON answer or an SSE stream with turn markers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Response
from litestar.response import Stream

from ..context import AppContext
from ..errors import BadRequest
from ..lifecycle import RequestTracker
from ..loop import LoopEngine, LoopSpec
from ..loop_stream import LedgerTurns, collect_loop, loop_sse_stream
from ..providers.base import ChatCall
from ..tools import ToolPolicy
from .headers import SSE_HEADERS, response_headers

if TYPE_CHECKING:
    from .pipeline import WireFormat


async def serve_loop(
    ctx: AppContext, tracker: RequestTracker, call: ChatCall, wire: WireFormat, headers: dict[str, str]
) -> Response[Any]:
    spec = LoopSpec.from_request(call.request, ctx.settings.loop_max_turns_cap)
    assert spec is not None  # exchange.prepare saw loop_mode
    assert tracker.booking is not None
    turns = LedgerTurns(ctx.ledger, tracker.booking, tracker)
    engine = LoopEngine(
        spec,
        call,
        ctx.provider(call.provider),
        turns,
        ToolPolicy.from_settings(ctx.settings),
        tool_calling=ctx.settings.tool_calling,
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
        return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
    extension = await collect_loop(engine, turns, tracker)
    result = engine.result
    assert result.last is not None
    result.last.response_id = call.request_id
    headers = response_headers(tracker.request_id, call.provider, extension)
    content = msgspec.json.encode(wire.render(result.last, result.outcome(), extension))
    return Response(content, media_type="application/json", headers=headers)
