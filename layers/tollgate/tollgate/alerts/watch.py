"""The data plane's side of alerts: after a reserve (``observe``) or a refusal (``refused``), record every
threshold the budget has reached and not yet fired for this period, then hand it to the outbox.

Recording is one conditional write per (budget, period, threshold), so it fires once across every process
and Lambda; a process also remembers what it saw recorded, so a budget past a threshold costs no further
writes there. The first refusal for a budget counts as reaching 100%: every threshold up to 100 fires.
Errors are logged, never raised: an alert never fails a request.
"""

from __future__ import annotations

import logging

from ..logs import log_event
from ..store.alert_base import Alert, AlertStore, alert_id
from ..timeutil import Clock, format_time, utc_now
from .outbox import Outbox
from .thresholds import BudgetUse, reached, reached_by_refusal

logger = logging.getLogger("tollgate.alerts")
MAX_REMEMBERED = 100_000  # (tenant, alert id) pairs a process remembers before starting afresh


class AlertWatch:
    def __init__(self, store: AlertStore, outbox: Outbox, clock: Clock = utc_now) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self._seen: set[tuple[str, str]] = set()
        self._refused: set[tuple[str, str, str]] = set()

    async def observe(self, use: BudgetUse) -> None:
        """After a successful reserve: ``use.used`` is settled + reserved, this reservation included."""
        await self._fire(use, reached(use))

    async def refused(self, use: BudgetUse) -> None:
        """After a refusal: the budget counts as at 100%, so every threshold up to 100 fires."""
        thresholds = reached_by_refusal(use)
        await self._fire(use, thresholds)
        if all((use.tenant, alert_id(use.budget_id, use.period_key, t)) in self._seen for t in thresholds):
            if len(self._refused) >= MAX_REMEMBERED:
                self._refused.clear()
            self._refused.add((use.tenant, use.budget_id, use.period_key))

    def refusal_seen(self, tenant: str, budget_id: str, period_key: str) -> bool:
        """Whether this process already handled a refusal of that budget in that period (then every
        threshold has fired: a caller may skip reading the budget again)."""
        return (tenant, budget_id, period_key) in self._refused

    async def _fire(self, use: BudgetUse, thresholds: tuple[int, ...]) -> None:
        for threshold in thresholds:
            seen = (use.tenant, alert_id(use.budget_id, use.period_key, threshold))
            if seen in self._seen:
                continue
            alert = Alert(
                use.tenant,
                use.budget_id,
                use.period_key,
                threshold,
                use.limit,
                use.used,
                format_time(self.clock()),
            )
            try:
                recorded = await self.store.record_alert(alert)
            except Exception as exc:
                log_event(logger, logging.ERROR, "alert_record_failed", alert=seen[1], error=str(exc)[:200])
                continue
            if len(self._seen) >= MAX_REMEMBERED:
                self._seen.clear()
            self._seen.add(seen)
            if recorded:
                log_event(
                    logger, logging.INFO, "alert_fired", tenant=use.tenant, alert=seen[1], used=use.used
                )
                self.outbox.deliver_soon(alert)
