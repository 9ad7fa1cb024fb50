"""AppContext: what one process holds (settings, clients, adapters, observers). Built by create_app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from .config import Settings
from .observability.diagnostics import Diagnostics
from .observability.metrics import Metrics
from .providers.base import Provider
from .providers.registry import Router


@dataclass(slots=True)
class AppContext:
    settings: Settings
    router: Router
    metrics: Metrics
    diagnostics: Diagnostics
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0
    http: httpx.AsyncClient | None = None
    providers: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        router = Router(settings)
        return cls(
            settings=settings,
            router=router,
            metrics=Metrics(),
            diagnostics=Diagnostics(router.configs, settings.recent_requests),
        )

    def provider(self, name: str) -> Provider:
        return self.providers[name]
