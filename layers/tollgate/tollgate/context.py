"""AppContext: what one process holds (settings, clients, adapters, store, observers). Built by create_app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from .accounting import Pricing
from .config import Settings
from .keys import Authenticator
from .ledger import Ledger
from .observability.diagnostics import Diagnostics
from .observability.metrics import Metrics
from .providers.base import ChatCall, Provider
from .providers.registry import Router
from .store.base import Store
from .sweeper import Sweeper
from .timeutil import Clock, utc_now


@dataclass(slots=True)
class AppContext:
    settings: Settings
    router: Router
    metrics: Metrics
    diagnostics: Diagnostics
    store: Store
    authenticator: Authenticator
    ledger: Ledger
    sweeper: Sweeper
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0
    http: httpx.AsyncClient | None = None
    providers: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def build(
        cls, settings: Settings, store: Store, *, allow_open: bool, clock: Clock = utc_now
    ) -> AppContext:
        """No I/O: the store connects on first use, provider clients are made in the lifespan."""
        router = Router(settings)
        ledger = Ledger(
            store,
            Pricing.load(settings.pricing_file),
            audit_key=settings.audit_hmac_key(),
            session_keep=settings.session_retention_messages,
            session_ttl=settings.session_ttl_seconds,
        )
        return cls(
            settings=settings,
            router=router,
            metrics=Metrics(),
            diagnostics=Diagnostics(router.configs, settings.recent_requests),
            store=store,
            authenticator=Authenticator(
                store, cache_seconds=settings.key_cache_seconds, allow_open=allow_open
            ),
            ledger=ledger,
            sweeper=Sweeper(store, ledger, settings.reservation_max_age_seconds, clock),
        )

    def provider(self, name: str) -> Provider:
        return self.providers[name]

    async def route(self, call: ChatCall) -> ChatCall:
        """Let the provider say who will really serve the call (llama.cpp asleep -> its fallback)."""
        route = getattr(self.providers.get(call.provider), "route", None)
        if route is None:
            return call
        routed: ChatCall = await route(call)
        return routed
