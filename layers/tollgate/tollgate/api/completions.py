"""POST /v1/completions (legacy): the ``text_completion`` wire format (``wire.completions``) over the
shared pipeline."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from ..context import AppContext
from ..providers.base import ChatCall
from ..schemas.completions import LegacyCompletionRequest
from ..schemas.openai import ChatCompletionRequest
from ..wire import WireFormat
from ..wire.completions import CompletionEncoder, parse, render
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .errors import error_payload
from .pipeline import serve


def _parse(raw: bytes) -> ChatCompletionRequest:
    return validate(LegacyCompletionRequest, parse(decode_json_object(raw)))


def _encoder(call: ChatCall) -> CompletionEncoder:
    return CompletionEncoder(call, error_payload)


LEGACY_COMPLETIONS = WireFormat(parse=_parse, render=render, encoder=_encoder)


@post("/v1/completions", status_code=200, opt={METERED: True})
async def completions(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    return await serve(request, ctx, caller, LEGACY_COMPLETIONS)
