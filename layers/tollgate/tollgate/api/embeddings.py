"""POST /v1/embeddings: route, check the model, reserve, embed, then settle, price and audit.

No chunks and no stream, so it does not go through ``pipeline.serve``; it uses the same pieces:
the caller dependency, the router (public names, allow-list), the attempt step (``Exchange.attempt`` with an
embeddings operation: retries and fallbacks as for chat) and the same headers. Every exit path finishes the
tracker (settle + audit) before the response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from .. import embeddings
from ..audit import sha256_hex
from ..context import AppContext
from ..engine.exchange import Exchange
from ..engine.prepare import allowed_route
from ..engine.route import Route, split_model
from ..errors import BadRequest
from ..keys import Principal
from ..lifecycle import Outcome, RequestTracker
from ..providers.base import ChatCall, Embedder, EmbeddingResult
from ..schemas.embeddings import EmbeddingsRequest
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .headers import response_headers
from .pipeline import begin, finish_failed, read_body


def parse(raw: bytes) -> EmbeddingsRequest:
    payload = decode_json_object(raw)
    if "input" not in payload:
        raise BadRequest("input is required", param="input")
    embeddings.check_input(payload["input"])
    return validate(EmbeddingsRequest, payload)


def route(ctx: AppContext, body: EmbeddingsRequest, principal: Principal) -> Route:
    """As for chat (public names first); a provider's own model defaults to its embeddings model."""
    found = ctx.router.public_route(body.provider, body.model)
    if found is None:
        provider, model = ctx.router.resolve(body.provider, body.model)
        model = embeddings.default_model(provider, split_model(body.model)[1]) or model
        found = ctx.router.provider_route(provider, model)
    return allowed_route(found, principal)


def embed_with(ctx: AppContext, body: EmbeddingsRequest) -> Callable[[ChatCall], Awaitable[EmbeddingResult]]:
    """The upstream operation of one attempt: the candidate's adapter must serve embeddings."""

    async def embed(call: ChatCall) -> EmbeddingResult:
        adapter = ctx.adapter(call)
        if not isinstance(adapter, Embedder):
            raise BadRequest(f"provider {call.provider} has no embeddings endpoint", param="model")
        return await adapter.embed(
            embeddings.embedding_call(call.request_id, call.provider, call.model, body)
        )

    return embed


async def start(
    ctx: AppContext, tracker: RequestTracker, caller: Caller, body: EmbeddingsRequest, raw: bytes
) -> Exchange:
    """Route, book and reserve (an upper bound from the inputs' bytes; embeddings generate nothing)."""
    principal = caller.principal
    found = route(ctx, body, principal)
    booking = tracker.booking = ctx.ledger.book(principal, body.pool, sha256_hex(raw))
    booking.admission = caller.admission
    request = embeddings.booking_request(body)
    exchange = tracker.exchange = Exchange(ctx, booking, found, request, tracker.request_id)
    tracker.call = exchange.served
    await exchange.reserve(embeddings.reservation(request))
    return exchange


async def _finish(tracker: RequestTracker, outcome: Outcome) -> dict[str, Any]:
    extension: dict[str, Any] = {}
    with anyio.CancelScope(shield=True):
        extension = await tracker.finish(outcome)
    return extension


@post("/v1/embeddings", status_code=200, opt={METERED: True})
async def create_embeddings(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    tracker = begin(request, ctx, caller)
    try:
        raw = await read_body(request, ctx)
        body = parse(raw)
        exchange = await start(ctx, tracker, caller, body, raw)
        result = await exchange.attempt(embed_with(ctx, body))
        tracker.call = exchange.served
        outcome = Outcome("ok", result.usage, result.model, answer=embeddings.answer_record(result))
        extension = await _finish(tracker, outcome)
    except BaseException as exc:
        await finish_failed(tracker, exc)
        raise
    headers = response_headers(tracker.request_id, extension)
    content = embeddings.render(result, body.encoding_format, exchange.served.model, extension)
    return Response(msgspec.json.encode(content), media_type="application/json", headers=headers)
