"""The attempt step: one charged upstream exchange — a request, or one turn of an agent loop.

Reserve once (an upper bound over every candidate that may serve), attempt the route's candidates until one
answers (retries and fallbacks only before the first byte reaches the client), then settle exactly once with
what really served: that call is what is priced, audited and named in the response headers. Every endpoint
(chat, messages, completions, embeddings) and every loop turn goes through this one class; streaming and
buffered answers differ only in how they consume the chunks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..accounting import Pricing, PromptBound
from ..errors import (
    TollgateError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ..ledger import Booking, Charge, Settlement
from ..logs import log_event
from ..providers.base import ChatCall, Chunk, Usage
from ..schemas.openai import ChatCompletionRequest
from ..store.base import Holder
from .plan import Candidate, plan_for
from .retry import delay_before, describe, exhausted, retryable
from .route import Route

if TYPE_CHECKING:
    from ..context import AppContext
    from ..lifecycle import Outcome

logger = logging.getLogger("tollgate.route")
T = TypeVar("T")
Opened = tuple[Chunk | None, AsyncIterator[Chunk]]
_rng = random.Random()  # noqa: S311 - backoff jitter and load spreading, not security


def charge_of(booking: Booking, call: ChatCall, usage: Usage, attempts: int) -> Charge:
    principal = booking.principal
    return Charge(
        tenant=principal.tenant,
        key_id=principal.key_id,
        pool=booking.pool,
        request_id=call.request_id,
        provider=call.provider,
        model=call.model,
        usage=usage,
        deployment=call.deployment,
        attempts=attempts,
    )


class Exchange:
    """Per request (or loop turn), never shared. ``settle`` runs exactly once, also when nothing was
    reserved (a refused request is audited too) and when the client left (the caller shields it)."""

    def __init__(
        self,
        ctx: AppContext,
        booking: Booking,
        route: Route,
        request: ChatCompletionRequest,
        request_id: str,
        *,
        save_session: bool = True,
    ) -> None:
        self.ctx, self.booking, self.route = ctx, booking, route
        self.request, self.request_id = request, request_id
        self.save_session = save_session
        self._calls: dict[Candidate, ChatCall] = {}  # each candidate's call, built once
        self.served: ChatCall = self._call(route.groups[0][0])  # until an attempt answers
        self.attempts = 0
        self.settlement: Settlement | None = None
        self._settled = False
        self._lease: str | None = None  # the deployment whose in-flight count this exchange holds

    def _call(self, candidate: Candidate) -> ChatCall:
        call = self._calls.get(candidate)
        if call is None:
            call = self._calls[candidate] = self.ctx.router.call(candidate, self.request, self.request_id)
        return call

    def estimate(self) -> int:
        """The most any candidate can use: one reservation covers every attempt."""
        prompt = PromptBound.of(self.request)
        return max(prompt.with_call(self._call(c)) for c in self.route.candidates())

    async def reserve(self, tokens: int | None = None) -> None:
        """One reservation for every attempt: ``tokens``, or the estimate over the candidates."""
        router, prompt = self.ctx.router, PromptBound.of(self.request)
        calls = [router.call(c, self.request, self.request_id) for c in self.route.candidates()]
        costed = [(c.provider, c.model, prompt.with_call(c) if tokens is None else tokens) for c in calls]
        tokens = max(t for _, _, t in costed) if tokens is None else tokens
        holder = Holder(self.booking.principal.key_id, self.served.provider, self.served.model)
        uses = self.request.tool_uses()  # billed tool uses, by the provider that runs them: fees held too
        await self.ctx.ledger.reserve(self.booking, self.request_id, tokens, holder, costed, uses)

    async def open(self) -> Opened:
        """The first chunk of the first candidate that answers, and the rest of its stream."""
        return await self.attempt(self._open_chat)

    async def _open_chat(self, call: ChatCall) -> Opened:
        chunks = self.ctx.adapter(call).chat(call)
        try:
            return await anext(chunks), chunks
        except StopAsyncIteration:
            return None, chunks

    async def attempt(self, operation: Callable[[ChatCall], Awaitable[T]]) -> T:
        """Run ``operation`` on candidates until one succeeds; the last error (listing every attempt)
        when none does or the error is not worth another attempt."""
        router, policy = self.ctx.router, self.ctx.router.routing.router
        plan = plan_for(self.route.groups, router.health, strategy=policy.strategy, rng=_rng)
        budget = max(1 + policy.retries, self.route.min_attempts)
        tried: list[str] = []
        while True:
            candidate = plan.next()
            call = self.served = self._call(candidate)
            self.attempts += 1
            router.health.started(candidate.deployment)
            started = time.monotonic()
            try:
                result = await operation(call)
            except TollgateError as exc:
                router.health.ended(candidate.deployment)
                tried.append(describe(candidate.deployment, exc))
                again = retryable(exc) and self.attempts < budget
                self._record_failure(call, exc, again=again)
                if not again:
                    raise exhausted(exc, tried) from exc
                await anyio.sleep(delay_before(self.attempts, exc, policy, _rng))
                continue
            except BaseException:
                router.health.ended(candidate.deployment)
                raise
            router.health.succeeded(candidate.deployment, time.monotonic() - started)
            self._lease = candidate.deployment
            fallback = candidate not in self.route.groups[0]
            self.ctx.metrics.attempt_served(call.provider, call.model, fallback=fallback)
            return result

    def _record_failure(self, call: ChatCall, error: TollgateError, *, again: bool) -> None:
        """Health and metrics learn of an upstream's failure (not of the client's own bad request)."""
        if not _upstream_fault(error):
            return
        deployment = call.deployment or call.provider
        cooled = self.ctx.router.health.failed(deployment, _health_note(error))
        known = self.ctx.router.configured_model(call.provider, call.model)
        self.ctx.metrics.attempt_failed(call.provider, call.model, retried=again, cooled=cooled, known=known)
        level = logging.INFO if again else logging.WARNING
        log_event(
            logger,
            level,
            "attempt_failed",
            request_id=self.request_id,
            deployment=deployment,
            code=error.code,
            retried=again,
            cooldown=cooled,
        )

    async def settle(self, outcome: Outcome) -> dict[str, Any]:
        """Exactly once: settle the reservation, audit, save the session; the ``tollgate`` extension."""
        if self._settled:
            return {}
        self._settled = True
        if self._lease is not None:  # the answer broke off mid-stream: the deployment failed after all
            if outcome.error is not None and _upstream_fault(outcome.error):
                self.ctx.router.health.failed(self._lease, _health_note(outcome.error))
            self.ctx.router.health.ended(self._lease)
            self._lease = None
        usage = outcome.usage or Usage(0, 0)
        priced = _priced_call(self.ctx.ledger.pricing, self.served, outcome.model)
        charge = charge_of(self.booking, priced, usage, self.attempts)
        self.settlement = await self.ctx.ledger.finish(
            self.booking, charge, outcome.status, outcome.answer, save_session=self.save_session
        )
        extension = self.served_by()
        if usage.estimated:
            extension["usage_estimated"] = True
        return extension | self.settlement.extension()

    def served_by(self) -> dict[str, Any]:
        """What served (or would have): the usage chunk's ``tollgate`` object and the response headers."""
        served = self.served
        body: dict[str, Any] = {"provider": served.provider, "model": served.model, "attempts": self.attempts}
        if served.deployment is not None and served.deployment != served.provider:
            body["deployment"] = served.deployment
        return body

    async def settle_shielded(self, outcome: Outcome) -> dict[str, Any]:
        extension: dict[str, Any] = {}
        with anyio.CancelScope(shield=True):
            extension = await self.settle(outcome)
        return extension


def _priced_call(pricing: Pricing, call: ChatCall, answered: str | None) -> ChatCall:
    """The call to price and audit: the one made, unless the upstream answered as another model. A dated
    snapshot or alias of the same price (``gpt-4o-mini`` answered as ``gpt-4o-mini-2024-07-18``, any local
    model) is the model called; another one is logged (``served_model_differs``) and priced as what
    served when the price table knows it, else as the model called (never guessed)."""
    if not answered or answered == call.model:
        return call
    called, served = pricing.price(call.provider, call.model), pricing.price(call.provider, answered)
    if served is not None and served == called:
        return call
    priced = replace(call, model=answered) if served is not None else call
    log_event(
        logger,
        logging.WARNING,
        "served_model_differs",
        request_id=call.request_id,
        provider=call.provider,
        called=call.model,
        served=answered[:200],
        priced=priced.model[:200],
    )
    return priced


def _upstream_fault(error: TollgateError) -> bool:
    """A failure that says something about the deployment (not about the client's request)."""
    return isinstance(error, UpstreamError | UpstreamRateLimited | UpstreamTimeout | UpstreamUnavailable)


def _health_note(error: TollgateError) -> str:
    """The last error as diagnostics show it: the upstream's status (or tollgate's code), then the message."""
    return f"{error.upstream_status or error.code}: {error.message}"
