"""The Litestar app class of both factories: Litestar less the pydantic and attrs plugins it adds by default.

Litestar appends its pydantic plugins (DTOs, signature models, schemas, dependency injection for pydantic
types, v1 and v2) and its attrs schema plugin to every app whenever those packages are installed, and
importing them imports ``pydantic.v1`` (~20 ms) and ``attrs`` (~9 ms) at every cold start. tollgate needs
neither: no handler takes or declares a pydantic or attrs type (bodies are read raw and validated by
``api/body.py``; the request-body schemas are attached by ``api/openapi.py``; handlers return dicts and
``Response`` objects), so the app keeps only the msgspec dependency plugin Litestar always adds, and the one
thing of the pydantic plugin that could still matter at run time, encoding a pydantic model met in a
response, is kept as a type encoder.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.plugins import PluginProtocol
from pydantic import BaseModel


def _encode_model(model: BaseModel) -> Any:
    return model.model_dump(mode="json")


TYPE_ENCODERS: dict[Any, Any] = {BaseModel: _encode_model}


class GatewayApp(Litestar):
    """``Litestar`` whose default plugins are only the msgspec one (see the module docstring)."""

    @staticmethod
    def _get_default_plugins(plugins: list[PluginProtocol]) -> list[PluginProtocol]:
        from litestar.plugins.core import MsgspecDIPlugin

        plugins.append(MsgspecDIPlugin())
        return plugins
