"""POST /v1/responses (the OpenAI Responses API over the shared pipeline), POST /v1/responses/compact
(``wire.responses_compact``) and the stored responses: GET /v1/responses/{id}, DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items.

A stored response is the caller's tenant's only: another tenant's id answers 404, as a missing one does.
Errors have the OpenAI error shape, which the Responses API shares.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from ..context import AppContext
from ..errors import BadRequest, NotFound
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..store.base import StoredResponse
from ..wire import WireFormat, responses_compact
from ..wire.responses import bind, render, to_chat
from ..wire.responses_request import ResponsesRequest
from ..wire.responses_stream import ResponsesEncoder
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .pipeline import serve


def _parse(raw: bytes) -> ChatCompletionRequest:
    payload = decode_json_object(raw)
    return to_chat(validate(ResponsesRequest, payload), payload)


def _encoder(call: ChatCall) -> ResponsesEncoder:
    return ResponsesEncoder(call)


def _parse_compaction(raw: bytes) -> ChatCompletionRequest:
    """A compaction is one non-streamed turn that stores nothing and calls no tool."""
    request = validate(ResponsesRequest, decode_json_object(raw))
    if request.stream:
        raise BadRequest("a compaction is not streamed; leave stream out", param="stream")
    return to_chat(request.model_copy(update={"store": False, "text": None}), compact=True)


RESPONSES = WireFormat(parse=_parse, render=render, encoder=_encoder, bind=bind)
COMPACTION = WireFormat(parse=_parse_compaction, render=responses_compact.render, encoder=_encoder, bind=bind)


@post("/v1/responses", status_code=200, opt={METERED: True})
async def create_response(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    return await serve(request, ctx, caller, RESPONSES)


@post("/v1/responses/compact", status_code=200, opt={METERED: True})
async def compact_response(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    """The conversation in ``input`` compacted to a short history to continue from."""
    return await serve(request, ctx, caller, COMPACTION)


async def _stored(ctx: AppContext, caller: Caller, response_id: str) -> StoredResponse:
    stored = await ctx.store.get_response(caller.principal.tenant, response_id)
    if stored is None:
        raise NotFound(f"no response with id {response_id!r}", param="response_id")
    return stored


@get("/v1/responses/{response_id:str}")
async def retrieve_response(
    ctx: NamedDependency[AppContext], caller: NamedDependency[Caller], response_id: FromPath[str]
) -> dict[str, Any]:
    body: dict[str, Any] = (await _stored(ctx, caller, response_id)).body["response"]
    return body


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(
    ctx: NamedDependency[AppContext], caller: NamedDependency[Caller], response_id: FromPath[str]
) -> dict[str, Any]:
    if not await ctx.store.delete_response(caller.principal.tenant, response_id):
        raise NotFound(f"no response with id {response_id!r}", param="response_id")
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(
    ctx: NamedDependency[AppContext],
    caller: NamedDependency[Caller],
    response_id: FromPath[str],
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    after: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """The request's input items, newest first unless ``order=asc``; paged with ``after`` and ``limit``."""
    items: list[dict[str, Any]] = list((await _stored(ctx, caller, response_id)).body["input_items"])
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


ROUTES = [create_response, compact_response, retrieve_response, delete_response, list_input_items]
