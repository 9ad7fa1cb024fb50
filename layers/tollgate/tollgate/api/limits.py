"""GET /v1/limits: the rate limits that apply to the caller (its tenant's and its key's), with this
minute's use. Reading it is not counted against them."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency

from ..context import AppContext
from .caller import Caller


@get("/v1/limits")
async def my_limits(ctx: NamedDependency[AppContext], caller: NamedDependency[Caller]) -> dict[str, Any]:
    admission = await ctx.limits.admission(caller.principal)
    return {"limits": [] if admission is None else await admission.status()}
