"""AppContext: what one process holds (settings, clients, adapters, store, observers). Built by create_app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from .accounting import Pricing
from .config import Settings
from .engine.route import Router
from .engine.routes import RoutingConfig, load_config
from .keys import Authenticator
from .ledger import Ledger
from .observability.diagnostics import Diagnostics
from .observability.metrics import Metrics
from .providers.base import ChatCall, Provider
from .providers.registry import wake_fallback
from .store.base import Store


@dataclass(slots=True)
class AppContext:
    settings: Settings
    router: Router
    metrics: Metrics
    diagnostics: Diagnostics
    store: Store
    authenticator: Authenticator
    ledger: Ledger
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0
    http: httpx.AsyncClient | None = None
    providers: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def build(
        cls, settings: Settings, store: Store, *, allow_open: bool, routing: RoutingConfig | None = None
    ) -> AppContext:
        """No I/O but reading the routing config (``TOLLGATE_CONFIG``; a bad one raises ``ConfigError``):
        the store connects on first use, provider clients are made in the lifespan."""
        if routing is None:
            routing = load_config(settings.config_source, max_age=settings.config_max_age_seconds)
        router = Router(settings, routing, wake_fallback=wake_fallback(settings))
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
            diagnostics=Diagnostics(router, settings.recent_requests),
            store=store,
            authenticator=Authenticator(
                store, cache_seconds=settings.key_cache_seconds, allow_open=allow_open
            ),
            ledger=ledger,
        )

    def provider(self, name: str) -> Provider:
        return self.providers[name]

    def adapter(self, call: ChatCall) -> Provider:
        """The adapter of the deployment a call goes to (a provider's own when it names none)."""
        return self.providers[call.deployment or call.provider]
