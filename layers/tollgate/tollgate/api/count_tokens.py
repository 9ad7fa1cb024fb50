"""POST /v1/messages/count_tokens: how many input tokens a Messages request would use.

Authenticated, routed and allow-listed like ``/v1/messages`` (the route's first deployment counts), but no
model is called, so nothing is
reserved, charged or audited. The count is the upstream's own where it has a counting endpoint
(Anthropic, Bedrock's CountTokens), else tollgate's estimate; ``tollgate.estimated`` says which.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from ..context import AppContext
from ..engine.prepare import allowed_route
from ..errors import UpstreamBadRequest, UpstreamNotFound
from ..prompt_bound import prompt_estimate
from ..providers.base import ChatCall, TokenCounter
from ..schemas.anthropic import CountTokensRequest
from ..wire.anthropic_messages_request import to_chat
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .headers import response_headers
from .messages import ERROR_HANDLERS, betas

logger = logging.getLogger(__name__)


async def counted(ctx: AppContext, call: ChatCall) -> tuple[int, bool]:
    """(input tokens, estimated?): the estimate also where the upstream cannot count this model or has no
    counting endpoint (it answers 400 or 404); other upstream failures are the caller's error."""
    adapter = ctx.adapter(call)
    if isinstance(adapter, TokenCounter):
        try:
            exact = await adapter.count_tokens(call)
        except (UpstreamBadRequest, UpstreamNotFound) as exc:
            logger.info("%s cannot count tokens (%s); estimating", call.provider, exc.code)
            exact = None
        if exact is not None:
            return exact, False
    return prompt_estimate(call), True


@post("/v1/messages/count_tokens", status_code=200, exception_handlers=ERROR_HANDLERS, opt={METERED: True})
async def count_tokens(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    principal, request_id = caller.principal, caller.request_id
    body = validate(CountTokensRequest, decode_json_object(await request.body()))
    chat = to_chat(body, betas(request))
    route = allowed_route(ctx.router.route(chat), principal)
    call = ctx.router.call(route.candidates()[0], chat, request_id)  # the first deployment that would serve
    tokens, estimated = await counted(ctx, call)
    content = {"input_tokens": tokens, "tollgate": {"estimated": estimated}}
    served = {"provider": call.provider, "model": call.model}
    return Response(content, media_type="application/json", headers=response_headers(request_id, served))
