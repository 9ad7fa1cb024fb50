"""POST /v1/chat/completions."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.response import Stream

from ..context import AppContext
from ..errors import TollgateError
from ..lifecycle import Outcome, RequestTracker
from ..providers.base import ChatCall, Chunk
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder, sse_stream
from .body import decode_json_object, validate
from .errors import error_payload

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def new_request_id() -> str:
    return uuid.uuid4().hex


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]
) -> Response[Any]:
    request_id = new_request_id()
    request.scope.setdefault("state", {})["request_id"] = request_id
    tracker = RequestTracker(ctx, request_id)
    try:
        chat = validate(ChatCompletionRequest, decode_json_object(await request.body()))
        call = tracker.call = ctx.router.plan(chat, request_id)
        chunks = ctx.provider(call.provider).chat(call)
        headers = {"x-tollgate-request-id": request_id, "x-tollgate-provider": call.provider}
        if chat.stream:
            first = await _first_chunk(chunks)
            body = sse_stream(call, first, chunks, tracker, error_payload)
            return Stream(body, media_type="text/event-stream", headers=headers | SSE_HEADERS)
        return await _complete(call, chunks, tracker, headers)
    except TollgateError as exc:
        await tracker.finish(Outcome.failed(exc))
        raise
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class()) else "internal_error"
        with anyio.CancelScope(shield=True):
            await tracker.finish(Outcome(status=status))
        raise


async def _first_chunk(chunks: Any) -> Chunk | None:
    """Wait for the upstream's first chunk, so failures before any byte get a real HTTP status."""
    try:
        first: Chunk = await anext(chunks)
    except StopAsyncIteration:
        return None
    return first


async def _complete(
    call: ChatCall, chunks: Any, tracker: RequestTracker, headers: dict[str, str]
) -> Response[Any]:
    builder = ResponseBuilder(call)
    async for chunk in chunks:
        builder.add(chunk)
    usage = builder.final_usage()
    extension = await tracker.finish(Outcome(status="ok", usage=usage, model=builder.model))
    content = msgspec.json.encode(builder.completion(usage, extension))
    return Response(content, media_type="application/json", headers=headers)
