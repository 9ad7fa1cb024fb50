"""POST /v1/chat/completions: the OpenAI wire format (``wire.openai_chat``) over the shared pipeline."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from ..context import AppContext
from ..providers.base import ChatCall
from ..schemas.openai import ChatCompletionRequest
from ..wire import WireFormat
from ..wire.openai_chat import OpenAIChatEncoder, render
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .errors import error_payload
from .pipeline import serve


def _parse(raw: bytes) -> ChatCompletionRequest:
    return validate(ChatCompletionRequest, decode_json_object(raw))


def _encoder(call: ChatCall) -> OpenAIChatEncoder:
    return OpenAIChatEncoder(call, error_payload)


OPENAI_CHAT = WireFormat(parse=_parse, render=render, encoder=_encoder)


@post("/v1/chat/completions", status_code=200, opt={METERED: True})
async def chat_completions(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    return await serve(request, ctx, caller, OPENAI_CHAT)
