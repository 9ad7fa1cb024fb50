"""POST /v1/messages: the Anthropic Messages wire format (``wire.anthropic_messages``) over the shared
pipeline.

The client's ``anthropic-beta`` header rides along with the request (an Anthropic upstream gets it, Bedrock
the betas it accepts); ``?beta=true`` (Claude Code's) is accepted and changes nothing. ``HEAD /`` and
``HEAD /v1/messages`` answer 200 without a key (clients probe the base URL with them).

Errors on this route keep tollgate's HTTP statuses but take Anthropic's shape
(``{"type": "error", "error": {"type", "message"}}``), through route-level exception handlers that
reshape what the app-wide handlers answer (so logging and headers stay in one place).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, head, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException

from ..context import AppContext
from ..errors import TollgateError
from ..lifecycle import Outcome
from ..providers.base import ChatCall
from ..schemas.anthropic import MessagesRequest
from ..schemas.native import parse_betas
from ..schemas.openai import ChatCompletionRequest
from ..streaming import ResponseBuilder
from ..wire import WireFormat
from ..wire.anthropic_messages import AnthropicEncoder, error_body, render_message
from ..wire.anthropic_messages_request import to_chat
from .body import decode_json_object, validate
from .caller import METERED, Caller
from .errors import http_exception_handler, status_and_type, tollgate_error_handler, unexpected_error_handler
from .pipeline import serve


def betas(request: Request[Any, Any, Any]) -> tuple[str, ...]:
    """Every ``anthropic-beta`` header's names (one header, comma separated, or several)."""
    return parse_betas(",".join(request.headers.getall("anthropic-beta", [])))


def _parse(raw: bytes, beta_names: tuple[str, ...] = ()) -> ChatCompletionRequest:
    return to_chat(validate(MessagesRequest, decode_json_object(raw)), beta_names)


def _render(builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> dict[str, Any]:
    return render_message(builder, outcome, extension)


def anthropic_error(error: TollgateError) -> dict[str, Any]:
    status, _ = status_and_type(error)
    return error_body(status, error.message)


def _encoder(call: ChatCall) -> AnthropicEncoder:
    return AnthropicEncoder(call, anthropic_error)


ANTHROPIC_MESSAGES = WireFormat(parse=_parse, render=_render, encoder=_encoder)


def _reshaped(response: Response[Any]) -> Response[Any]:
    """An OpenAI-shaped error response with its status and headers, its body in Anthropic's shape."""
    content = response.content if isinstance(response.content, dict) else {}
    message = str((content.get("error") or {}).get("message") or "error")
    response.content = error_body(response.status_code or 500, message)
    return response


def _tollgate_error(request: Request[Any, Any, Any], error: TollgateError) -> Response[Any]:
    return _reshaped(tollgate_error_handler(request, error))


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    return _reshaped(http_exception_handler(request, error))


def _unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    return _reshaped(unexpected_error_handler(request, error))


ERROR_HANDLERS: dict[Any, Any] = {
    TollgateError: _tollgate_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}


def _wire(beta_names: tuple[str, ...]) -> WireFormat:
    """This request's wire format: the Messages one, its parser holding the client's betas."""
    if not beta_names:
        return ANTHROPIC_MESSAGES
    return WireFormat(parse=lambda raw: _parse(raw, beta_names), render=_render, encoder=_encoder)


@post("/v1/messages", status_code=200, exception_handlers=ERROR_HANDLERS, opt={METERED: True})
async def messages(
    request: Request[Any, Any, Any], ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]
) -> Response[Any]:
    return await serve(request, ctx, caller, _wire(betas(request)))


@head(["/", "/v1/messages"], status_code=200, sync_to_thread=False)
def probe() -> None:
    """Claude Code and other clients check the base URL with HEAD before their first request."""
