"""The per-request tracker: what happens once a request ends, on every exit path.

``RequestTracker.finish`` runs exactly once per request, before the last byte of the response
(DESIGN.md §1 step 8: a Lambda sandbox freezes as soon as the response ends). It is called shielded
from cancellation, so a client that hangs up still gets its budget settled and its audit entry written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .containers import Revealed, record
from .errors import TollgateError
from .ledger import Booking
from .logs import log_event
from .observability.diagnostics import RequestSummary
from .observability.emf import RequestMetrics, emit
from .providers.base import ChatCall, Usage

if TYPE_CHECKING:
    from .context import AppContext
    from .engine.exchange import Exchange

logger = logging.getLogger("tollgate.request")
_SUMMARY_NAMES = tuple(f.name for f in fields(RequestSummary))


def summary_fields(summary: RequestSummary) -> dict[str, Any]:
    return {name: getattr(summary, name) for name in _SUMMARY_NAMES}  # asdict's deep copy, without it


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "ok", "client_closed", or the error code
    usage: Usage | None = None
    model: str | None = None
    error: TollgateError | None = None
    answer: dict[str, Any] | None = None  # the assistant message, for the session and the audit digest
    containers: tuple[Revealed, ...] = ()  # code execution containers the answer worked in

    @classmethod
    def failed(cls, error: TollgateError, usage: Usage | None = None, model: str | None = None) -> Outcome:
        return cls(status=error.code or "error", usage=usage, model=model, error=error)


class RequestTracker:
    """Per-request state (never stored on shared objects); finishes once."""

    def __init__(self, ctx: AppContext, request_id: str) -> None:
        self.ctx = ctx
        self.request_id = request_id
        self.started = time.perf_counter()
        self.booking: Booking | None = None
        # the request's charged exchange, settled by ``finish``; an agent loop has none (each turn is its
        # own exchange, {request_id}:{n}, settled by the loop), so finish then only saves the session
        self.exchange: Exchange | None = None
        self.call: ChatCall | None = None  # what served (a loop: its last turn), for metrics and logs
        self.cost_micro_usd: int | None = None  # from the ledger's settlement, for the EMF record
        # a wire format's own last step once accounted for (the Responses API keeps a stored answer);
        # before the last byte like the rest, and its failure is logged, never the request's
        self.after_finish: Callable[[Outcome], Awaitable[None]] | None = None
        self._finished = False
        ctx.request_began()

    async def finish(self, outcome: Outcome) -> dict[str, Any]:
        """Record and account for the outcome; returns the ``tollgate`` extension fields for the response."""
        if self._finished:
            return {}
        self._finished = True
        try:
            extension = await self._account(outcome)
            await self._claim_containers(outcome)
            await self._after(outcome)
        finally:
            self.ctx.request_accounted()
            self._observe(outcome)
        return extension

    async def _account(self, outcome: Outcome) -> dict[str, Any]:
        exchange = self.exchange
        if exchange is not None:
            extension = await exchange.settle(outcome)
            self.call = exchange.served
            if exchange.settlement is not None:
                self.cost_micro_usd = exchange.settlement.cost_micro_usd
            return extension
        if self.booking is not None and outcome.status == "ok" and outcome.answer is not None:
            await self.ctx.ledger.save_session(self.booking, self.request_id, outcome.answer)
        usage = outcome.usage or Usage(0, 0)
        return {"usage_estimated": True} if usage.estimated else {}

    async def _claim_containers(self, outcome: Outcome) -> None:
        """The containers the answer worked in become the tenant's (also when the client left: it may have
        seen their ids); a store failure is logged, and a later request naming one is then refused."""
        if not outcome.containers or self.booking is None:
            return
        try:
            await record(self.ctx.store, self.booking.principal.tenant, outcome.containers)
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            failed = "container_record_failed"
            log_event(logger, logging.ERROR, failed, request_id=self.request_id, error=error)

    async def _after(self, outcome: Outcome) -> None:
        if self.after_finish is None:
            return
        try:
            await self.after_finish(outcome)
        except Exception as exc:
            error = str(exc)[:300]
            log_event(logger, logging.WARNING, "after_finish_failed", request_id=self.request_id, error=error)

    def _observe(self, outcome: Outcome) -> None:
        latency = time.perf_counter() - self.started
        call = self.call
        provider = call.provider if call else None
        model = outcome.model or (call.model if call else None)
        usage = outcome.usage or Usage(0, 0)
        label = None  # the model as metrics name it: bounded (observability/metrics.py model_label)
        if call is not None and model is not None:
            known = outcome.status == "ok" or self.ctx.router.configured_model(call.provider, model)
            label = self.ctx.metrics.observe(
                call.provider,
                model,
                outcome.status,
                latency,
                usage.prompt_tokens,
                usage.completion_tokens,
                known=known,
            )
        summary = RequestSummary(
            request_id=self.request_id,
            at=time.time(),
            provider=provider,
            model=model,
            status=outcome.status,
            latency_ms=round(latency * 1000, 3),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            usage_estimated=usage.estimated,
            stream=bool(call and call.stream),
            error=outcome.error.message if outcome.error else None,
        )
        self.ctx.diagnostics.record(summary)
        level = logging.INFO if outcome.error is None else logging.WARNING
        tenant = self.booking.principal.tenant if self.booking else None
        if logger.isEnabledFor(level):
            log_event(logger, level, "request", tenant=tenant, **summary_fields(summary))
        if self.ctx.settings.emf_metrics:
            self._emit_emf(summary, tenant, label)

    def _emit_emf(self, summary: RequestSummary, tenant: str | None, model: str | None) -> None:
        """``model``: the bounded label (a CloudWatch dimension), never a name nobody served."""
        metrics = RequestMetrics(
            request_id=summary.request_id,
            tenant=tenant,
            provider=summary.provider,
            model=model,
            status=summary.status,
            latency_ms=summary.latency_ms,
            prompt_tokens=summary.prompt_tokens,
            completion_tokens=summary.completion_tokens,
            cost_micro_usd=self.cost_micro_usd,
        )
        emit(self.ctx.settings.metrics_namespace, metrics)
