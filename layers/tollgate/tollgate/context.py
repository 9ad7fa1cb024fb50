"""AppContext: what one process holds (settings, clients, adapters, store, observers). Built by create_app."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from .accounting import Pricing
from .alerts.build import build_alerts
from .alerts.watch import AlertWatch
from .audit_read import RecentVerifications
from .config import Settings
from .engine.route import Router
from .engine.routes import SSM_PREFIX, RoutingConfig, load_config
from .keys import Authenticator
from .ledger import Ledger
from .limits import RateLimits
from .logs import log_event
from .observability.diagnostics import Diagnostics
from .observability.metrics import Metrics
from .providers.base import ChatCall, Provider
from .providers.registry import build_providers, wake_fallback
from .store.base import Store
from .sweeper import Sweeper
from .timeutil import Clock, utc_now

logger = logging.getLogger("tollgate.routing")


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


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
    limits: RateLimits
    verifications: RecentVerifications
    alerts: AlertWatch | None = None  # None: no alert channel configured
    started_at: float = field(default_factory=time.time)
    in_flight: int = 0  # requests not yet accounted for (``RequestTracker``); ``idle`` is set at 0
    idle: asyncio.Event = field(default_factory=_set_event)
    http: httpx.AsyncClient | None = None
    providers: dict[str, Provider] = field(default_factory=dict)
    routing_checked: float = field(default_factory=time.monotonic)  # when the routing config was read
    clock: Clock = utc_now  # what time it is for limits and key rotation (tests inject one)

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: Store,
        *,
        allow_open: bool,
        routing: RoutingConfig | None = None,
        clock: Clock = utc_now,
        alert_clients: dict[str, Any] | None = None,
    ) -> AppContext:
        """No I/O but reading the routing config (``TOLLGATE_CONFIG``; a bad one raises ``ConfigError``):
        the store connects on first use, provider clients are made in the lifespan. ``alert_clients``
        (tests): ``webhook_transport`` and ``events_client`` for the alert channels."""
        if routing is None:
            routing = load_config(settings.config_source, max_age=settings.config_max_age_seconds)
        router = Router(settings, routing, wake_fallback=wake_fallback(settings))
        ledger = Ledger(
            store,
            Pricing.load(settings.pricing_file),
            audit_key=settings.audit_hmac_key(),
            session_keep=settings.session_retention_messages,
            session_ttl=settings.session_ttl_seconds,
            clock=clock,
            rules_cache_seconds=settings.key_cache_seconds,
        )
        alerts = ledger.alerts = build_alerts(settings, store, clock=clock, **(alert_clients or {}))
        return cls(
            settings=settings,
            router=router,
            metrics=Metrics(),
            diagnostics=Diagnostics(router, settings.recent_requests),
            store=store,
            authenticator=Authenticator(
                store, cache_seconds=settings.key_cache_seconds, allow_open=allow_open, clock=clock
            ),
            ledger=ledger,
            sweeper=Sweeper(
                store,
                ledger,
                settings.reservation_max_age_seconds,
                clock,
                outbox=alerts.outbox if alerts else None,
            ),
            limits=RateLimits(store, cache_seconds=settings.key_cache_seconds, clock=clock),
            verifications=RecentVerifications(settings.audit_verify_seconds),
            clock=clock,
            alerts=alerts,
        )

    def request_began(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def request_accounted(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    async def refresh_routing(self) -> None:
        """With ``TOLLGATE_CONFIG=ssm:/name``: at most every ``TOLLGATE_CONFIG_MAX_AGE_SECONDS``, read the
        parameter again and swap in a changed config (deployment health carries over). A parameter that no
        longer parses is logged and ignored: the running config stays."""
        source, max_age = self.settings.config_source, self.settings.config_max_age_seconds
        now = time.monotonic()
        if not source or not source.startswith(SSM_PREFIX) or now - self.routing_checked < max_age:
            return
        self.routing_checked = now
        try:
            routing = await anyio.to_thread.run_sync(functools.partial(load_config, source, max_age=max_age))
        except Exception as exc:
            log_event(logger, logging.ERROR, "routing_config_refresh_failed", error=str(exc)[:500])
            return
        if routing != self.router.routing:
            self._swap_router(routing)

    def _swap_router(self, routing: RoutingConfig) -> None:
        router = Router(self.settings, routing, wake_fallback=self.router.wake_fallback)
        router.health = self.router.health
        router.health.allowed_failures = routing.router.allowed_failures
        router.health.cooldown_seconds = routing.router.cooldown_seconds
        if self.http is not None:
            fresh = build_providers(self.settings, self.http, deployments=router.deployments)
            self.providers |= {k: v for k, v in fresh.items() if k not in self.providers}
        self.router = self.diagnostics.router = router
        log_event(logger, logging.INFO, "routing_config_refreshed", models=len(routing.models))

    def provider(self, name: str) -> Provider:
        return self.providers[name]

    def adapter(self, call: ChatCall) -> Provider:
        """The adapter of the deployment a call goes to (a provider's own when it names none)."""
        return self.providers[call.deployment or call.provider]
