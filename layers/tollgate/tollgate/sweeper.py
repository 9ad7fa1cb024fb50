"""The sweep: reservations nobody settled (a crashed process, a killed Lambda) are charged and audited.

Only reservations older than ``TOLLGATE_RESERVATION_MAX_AGE_SECONDS`` are touched (at least 960 s, longer
than Lambda's 15-minute limit, so never a live request's); an operator may sweep older ones only. Each is
charged its reserved upper bound (not refunded: the upstream may well have served it) and gets an audit
entry with status ``abandoned`` (``Ledger.audit_abandoned``); a settle that arrives after all corrects the
charge to the real usage (the store's ``swept`` marker). Expired sessions, stored responses and container
records go too, and pending budget alerts get another delivery attempt (``tollgate.alerts.outbox``).

``tollgate serve`` runs it every ``TOLLGATE_SWEEP_INTERVAL_SECONDS`` (``run_every``); on AWS an
EventBridge schedule invokes the admin function, which runs it (``functions/admin``); ``tollgate budgets
sweep`` and ``POST /admin/sweep`` run it by hand. Time comes from an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from .alerts.outbox import Outbox
from .errors import BadRequest
from .ledger import Ledger
from .logs import log_event
from .rollups import abandoned_change
from .store.base import Reservation, Store
from .timeutil import Clock, format_time, utc_now

logger = logging.getLogger("tollgate.sweep")


class SweepTooYoung(BadRequest):
    """An operator asked to sweep reservations younger than the configured maximum age."""

    default_code = "sweep_too_young"


class Sweeper:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        max_age_seconds: int,
        clock: Clock = utc_now,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox  # alerts still pending are retried here
        self.ledger = ledger
        self.max_age_seconds = max_age_seconds
        self.clock = clock

    async def sweep(self, older_than_seconds: int | None = None) -> dict[str, int]:
        """One sweep; ``older_than_seconds`` below the maximum age is refused (nothing is swept)."""
        age = self.max_age_seconds if older_than_seconds is None else older_than_seconds
        if age < self.max_age_seconds:
            raise SweepTooYoung(
                f"--older-than {age} is below TOLLGATE_RESERVATION_MAX_AGE_SECONDS ({self.max_age_seconds}): "
                "younger reservations may belong to requests still running",
                param="older_than",
            )
        now = self.clock()
        at = format_time(now)
        audited: list[str] = []

        async def audit(reservation: Reservation) -> None:  # before its charge: never a charge unaudited
            await self.ledger.audit_abandoned(reservation, at)
            audited.append(reservation.reservation_id)

        cutoff = format_time(now - timedelta(seconds=age))
        swept = await self.store.sweep_reservations(cutoff, at, audit)
        for reservation in swept:  # charged (once each): now its estimate counts in the cost rollups
            try:
                await self.store.add_rollup(abandoned_change(self.ledger.pricing, reservation, at))
            except Exception as exc:  # costs --verify reports the row; the sweep goes on
                log_event(logger, logging.ERROR, "rollup_failed", error=f"{type(exc).__name__}: {exc}")
        swept_usd = await self.store.sweep_usd_reservations(cutoff, at)  # audited with its request's tokens
        sessions = await self.store.sweep_sessions(at)
        responses = await self.store.sweep_responses(at)
        containers = await self.store.sweep_containers(at)
        alerts = await self.store.sweep_alerts(at)
        if swept:
            log_event(
                logger, logging.WARNING, "reservations_abandoned", count=len(swept), audited=len(audited)
            )
        counts = {
            "reservations_swept": len(swept),
            "usd_reservations_swept": len(swept_usd),
            "abandoned_audited": len(audited),
            "sessions_deleted": sessions,
            "responses_deleted": responses,
            "containers_deleted": containers,
            "alerts_deleted": alerts,
        }
        if self.outbox is not None:
            counts |= await self.outbox.retry_pending()
        return counts

    async def run_every(self, interval_seconds: float) -> None:
        """Sweep every ``interval_seconds`` until cancelled; a failed sweep is logged and retried later."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                await self.sweep()
            except Exception as exc:
                log_event(logger, logging.ERROR, "sweep_failed", error=f"{type(exc).__name__}: {exc}")
