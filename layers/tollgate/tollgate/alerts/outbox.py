"""Delivering recorded alerts: the alert record is the outbox.

One attempt = claim the record (a conditional write: attempts + 1, ``claimed_at`` now; nobody else works
on that attempt), send it on every channel that has not taken it yet, then record the outcome:
``delivered``, still ``pending`` (with the channels that took it and the error), or ``failed`` once
``max_attempts`` are spent. A pending alert is retried by the sweep once its last claim is older than
``retry_after_seconds`` (a claim that crashed midway is retried the same way).

The data plane's first attempt runs as a background task of the process (``deliver_soon``): it never
delays or fails the response. On Lambda a task cut off when the invocation ends simply stays pending, and
the scheduled sweep delivers it (``retry_pending``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from ..logs import log_event
from ..store.alert_base import DELIVERED, FAILED, PENDING, Alert, AlertStore
from ..timeutil import Clock, format_time, utc_now
from .channels import Channel

logger = logging.getLogger("tollgate.alerts")
NEVER_CLAIMED_BEFORE = "~"  # sorts after every time: a fresh alert (claimed_at "") is free to claim


class Outbox:
    def __init__(
        self,
        store: AlertStore,
        channels: Sequence[Channel],
        *,
        max_attempts: int,
        retry_after_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.channels = tuple(channels)
        self.max_attempts = max_attempts
        self.retry_after_seconds = retry_after_seconds
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver_soon(self, alert: Alert) -> None:
        """The first attempt, in the background (kept referenced until done; errors are logged)."""
        task = asyncio.get_running_loop().create_task(self._first_attempt(alert), name="tollgate-alert")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the background attempts under way (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _first_attempt(self, alert: Alert) -> None:
        try:
            await self.attempt(alert, stale_before=NEVER_CLAIMED_BEFORE)
        except Exception as exc:
            log_event(logger, logging.ERROR, "alert_delivery_failed", alert=alert.alert_id, error=_short(exc))

    async def retry_pending(self, limit: int = 100) -> dict[str, int]:
        """The sweep's part: one more attempt for every pending alert whose last claim is stale."""
        now = self.clock()
        stale_before = format_time(now - timedelta(seconds=self.retry_after_seconds))
        counts = {"alerts_delivered": 0, "alerts_pending": 0, "alerts_failed": 0}
        for alert in await self.store.pending_alerts(limit):
            if alert.claimed_at and alert.claimed_at >= stale_before:
                counts["alerts_pending"] += 1  # someone is on it (or was, moments ago)
                continue
            state = await self.attempt(alert, stale_before=stale_before)
            counts[f"alerts_{state or PENDING}"] += 1
        return counts

    async def attempt(self, alert: Alert, *, stale_before: str) -> str | None:
        """One attempt at ``alert`` (as read); the state it ends in, or None when another sender had it."""
        claimed = await self.store.claim_alert(
            alert.tenant, alert.alert_id, alert.attempts, format_time(self.clock()), stale_before
        )
        if claimed is None:
            return None
        delivered, errors = list(claimed.delivered), []
        for channel in self.channels:
            if channel.name in delivered:
                continue
            try:
                await channel.send(claimed)
                delivered.append(channel.name)
            except Exception as exc:
                errors.append(f"{channel.name}: {_short(exc)}")
        spent = claimed.attempts >= self.max_attempts
        state = DELIVERED if not errors else (FAILED if spent else PENDING)
        error = "; ".join(errors)[:500]
        await self.store.finish_alert(
            claimed.tenant, claimed.alert_id, claimed.attempts, state, tuple(delivered), error
        )
        log_event(
            logger,
            logging.INFO if state == DELIVERED else logging.WARNING,
            "alert_" + state,
            tenant=claimed.tenant,
            alert=claimed.alert_id,
            attempts=claimed.attempts,
            error=error or None,
        )
        return state


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
