"""POST /v1/embeddings: route, check the model, reserve, embed, then settle, price and audit.

Not a chat exchange (no chunks, no stream), so it does not go through ``pipeline.serve``; it uses the same
pieces: ``authenticate``, the router, ``Principal.check_model``, the ledger (through ``RequestTracker``,
with the ``ChatCall`` of ``tollgate.embeddings.booking_call``) and the same headers. Every exit path
finishes the tracker (settle + audit) before the response is sent.
"""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from .. import embeddings
from ..audit import sha256_hex
from ..context import AppContext
from ..errors import BadRequest, UpstreamUnavailable
from ..keys import Principal
from ..lifecycle import Outcome, RequestTracker
from ..providers.base import Embedder, EmbeddingCall
from ..providers.registry import split_model
from ..schemas.embeddings import EmbeddingsRequest
from .body import decode_json_object, validate
from .headers import response_headers
from .pipeline import begin, caller, finish_failed


def parse(raw: bytes) -> EmbeddingsRequest:
    payload = decode_json_object(raw)
    if "input" not in payload:
        raise BadRequest("input is required", param="input")
    embeddings.check_input(payload["input"])
    return validate(EmbeddingsRequest, payload)


def plan(ctx: AppContext, body: EmbeddingsRequest, request_id: str) -> tuple[Embedder, EmbeddingCall]:
    """Provider selection as for chat; the adapter must serve embeddings (Claude does not)."""
    provider, model = ctx.router.resolve(body.provider, body.model)
    model = embeddings.default_model(provider, split_model(body.model)[1]) or model
    if not ctx.router.configs[provider].configured:
        raise UpstreamUnavailable(f"provider {provider} is not configured")
    adapter = ctx.provider(provider)
    if not isinstance(adapter, Embedder):
        raise BadRequest(f"provider {provider} has no embeddings endpoint", param="model")
    return adapter, embeddings.embedding_call(request_id, provider, model, body)


async def book(
    ctx: AppContext,
    tracker: RequestTracker,
    principal: Principal,
    call: EmbeddingCall,
    body: EmbeddingsRequest,
    raw: bytes,
) -> None:
    principal.check_model(call.provider, call.model)
    booking = tracker.booking = ctx.ledger.book(principal, body.pool, sha256_hex(raw))
    tracker.call = embeddings.booking_call(call)
    await ctx.ledger.reserve(booking, tracker.call)


async def _finish(tracker: RequestTracker, outcome: Outcome) -> dict[str, Any]:
    extension: dict[str, Any] = {}
    with anyio.CancelScope(shield=True):
        extension = await tracker.finish(outcome)
    return extension


@post("/v1/embeddings", status_code=200)
async def create_embeddings(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext]
) -> Response[Any]:
    edge, tracker = begin(request, ctx)
    try:
        principal, raw = await caller(request, ctx, edge, tracker)
        body = parse(raw)
        adapter, call = plan(ctx, body, tracker.request_id)
        await book(ctx, tracker, principal, call, body, raw)
        result = await adapter.embed(call)
        outcome = Outcome("ok", result.usage, result.model, answer=embeddings.answer_record(result))
        extension = await _finish(tracker, outcome)
    except BaseException as exc:
        await finish_failed(tracker, exc)
        raise
    headers = response_headers(tracker.request_id, call.provider, extension)
    content = embeddings.render(result, body.encoding_format, call.model, extension)
    return Response(msgspec.json.encode(content), media_type="application/json", headers=headers)
