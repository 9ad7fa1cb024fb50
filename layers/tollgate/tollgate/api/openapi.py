"""``GET /openapi.json``: the OpenAPI 3.1 schema of the data plane and the admin API (no key needed).

Litestar generates paths, parameters and responses from the route handlers. The handlers read their raw
body only after the key is checked (a missing key is a 401 before any upload is read), so Litestar cannot
see the request bodies: they are attached here, in one place, from the pydantic models that validate
them, together with the keys each operation takes. Only JSON is served (no UI pages, nothing from a CDN).
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..schemas.anthropic import CountTokensRequest, MessagesRequest
from ..schemas.embeddings import EmbeddingsRequest
from ..schemas.openai import ChatCompletionRequest
from ..schemas.rate_limits import KeyRotate, LimitSet
from ..schemas.tollgate import BudgetSet, KeyBudgetSet, KeyCreate, TokensReport, TokensRequest
from ..wire.completions import CHAT_ONLY
from ..wire.responses_request import ResponsesRequest

# (path, method) -> the model that validates its JSON body
REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/chat/completions", "post"): ChatCompletionRequest,
    ("/v1/messages", "post"): MessagesRequest,
    ("/v1/messages/count_tokens", "post"): CountTokensRequest,
    ("/v1/responses", "post"): ResponsesRequest,
    ("/v1/responses/compact", "post"): ResponsesRequest,
    ("/v1/embeddings", "post"): EmbeddingsRequest,
    ("/v1/tokens/check", "post"): TokensRequest,
    ("/v1/tokens/reserve", "post"): TokensRequest,
    ("/v1/tokens/report", "post"): TokensReport,
    ("/admin/keys", "post"): KeyCreate,
    ("/admin/budgets/{tenant}/{pool}", "put"): BudgetSet,
    ("/admin/limits/{tenant}", "put"): LimitSet,
    ("/admin/limits/{tenant}/keys/{key_id}", "put"): LimitSet,
    ("/admin/keys/{key_id}/rotate", "post"): KeyRotate,
    ("/admin/keys/{key_id}/budget", "put"): KeyBudgetSet,
}
COMPLETIONS = ("/v1/completions", "post")  # the chat body without its chat-only fields, with `prompt`
SECURITY_SCHEMES = {
    "virtualKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "a virtual key (tg-...) from `tollgate keys create`; also accepted as x-api-key",
    },
    "adminKey": {"type": "http", "scheme": "bearer", "description": "TOLLGATE_ADMIN_KEY"},
}
_OPEN = ("/health",)
_ADMIN = ("/admin/", "/metrics", "/diagnostics/")
_REF = "#/components/schemas/{model}"


def _security(path: str) -> list[dict[str, list[str]]]:
    if path in _OPEN:
        return []
    return [{"adminKey": []}] if path.startswith(_ADMIN) else [{"virtualKey": []}]


def _completion_body(chat: dict[str, Any]) -> dict[str, Any]:
    """The legacy body: the chat body's fields less the chat-only ones (wire/completions.py), plus prompt."""
    properties = {k: v for k, v in chat["properties"].items() if k not in (*CHAT_ONLY, "messages")}
    prompt = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
        ],
        "description": "one prompt: a string, or a list of exactly one string",
    }
    return {
        **chat,
        "title": "CompletionRequest",
        "description": "The body of POST /v1/completions: one prompt; the other fields as for chat.",
        "properties": {"prompt": prompt, **properties},
        "required": ["prompt"],
    }


def _body_schemas() -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """Each body's JSON schema (a $ref into components) and the component schemas they use."""
    models = sorted(set(REQUEST_BODIES.values()), key=lambda m: m.__name__)
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    components = dict(top.get("$defs", {}))
    bodies = {key: refs[(model, "validation")] for key, model in REQUEST_BODIES.items()}
    components["CompletionRequest"] = _completion_body(components[ChatCompletionRequest.__name__])
    bodies[COMPLETIONS] = {"$ref": _REF.format(model="CompletionRequest")}
    return bodies, components


def complete(generated: dict[str, Any]) -> dict[str, Any]:
    """Litestar's schema with request bodies, component schemas and security added."""
    schema = copy.deepcopy(generated)
    bodies, components = _body_schemas()
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    schema["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["security"] = _security(path)
            if (path, method) in bodies:
                content = {"application/json": {"schema": bodies[(path, method)]}}
                operation["requestBody"] = {"required": True, "content": content}
    return schema


class SchemaPlugin(JsonRenderPlugin):
    """Serves ``complete(...)`` of Litestar's schema, built once per app."""

    def __init__(self) -> None:
        super().__init__(path="/")
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = msgspec.json.encode(complete(openapi_schema))
        return self._rendered


def openapi_config(path: str) -> OpenAPIConfig:
    """The schema at ``path`` (``/openapi.json``; ``/admin/openapi.json`` for the admin function)."""
    return OpenAPIConfig(
        title="tollgate",
        version=__version__,
        description="An OpenAI-compatible LLM gateway: budgets, costs and a hash-chained audit log.",
        path=path,
        render_plugins=[SchemaPlugin()],
    )
