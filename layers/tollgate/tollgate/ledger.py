"""Per-request accounting: reserve before the upstream call; settle, audit (= cost record) and save the
session after it, on every exit path and before the response's last byte (DESIGN.md §1 step 8)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio

from . import audit, overdraft, rollups
from .accounting import Pricing, usage_details, usd
from .alerts import budgets as budget_alerts
from .alerts.watch import AlertWatch
from .budgets import Budgets, Call, Hold, pool_exhausted
from .canonical import answer_digest
from .errors import BudgetExceeded
from .keys import Principal
from .limits import Admission
from .logs import log_event
from .providers.base import Usage
from .schemas.openai import Message
from .store.audit_base import AuditEntry
from .store.base import Holder, Overdrawn, Reservation, Store, UnknownPool
from .store.budget_records import BudgetRule
from .store.sqlite_group import group_writes, groups_writes
from .timeutil import Clock, after, format_time, now_str, utc_now
from .tool_fees import ToolUses

logger = logging.getLogger("tollgate.ledger")
SESSION_SAVE_ATTEMPTS = 5


@dataclass(slots=True)
class Booking:
    """What one request holds between reserve and finish (per request, never shared)."""

    principal: Principal
    pool: str
    request_sha256: str
    reservation_id: str | None = None
    reserved: int = 0
    holder: Holder | None = None  # who holds the reservation (for the sweep's estimate)
    session_id: str | None = None
    session_version: int = 0
    session_history: list[dict[str, Any]] = field(default_factory=list)
    new_messages: list[dict[str, Any]] = field(default_factory=list)
    admission: Admission | None = None  # the caller's rate limits (tollgate.limits): TPM counts here
    usd_holds: list[Hold] = field(default_factory=list)  # USD budgets held (``budgets.Budgets``)
    rules: Sequence[BudgetRule] = ()  # the budget rules the reserve read (``tollgate.overdraft`` uses them)


@dataclass(frozen=True, slots=True)
class Charge:
    """What the ledger settles, prices and audits: who, which request, what served it, and the usage."""

    tenant: str
    key_id: str
    pool: str
    request_id: str
    provider: str
    model: str
    usage: Usage
    deployment: str | None = None  # a routing deployment's id; None: the provider's own (from env)
    attempts: int = 1  # upstream calls made (0: refused before any, e.g. by its budget)

    def details(self) -> dict[str, str | int] | None:
        """The audit entry's ``details``: set only when routing did something worth recording."""
        details: dict[str, str | int] = {}
        if self.deployment is not None and self.deployment != self.provider:
            details["deployment"] = self.deployment
        if self.attempts != 1:
            details["attempts"] = self.attempts
        details.update(usage_details(self.usage))
        return details or None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the ledger tells the response: the cost (when priced) and the audit seq."""

    cost_micro_usd: int | None
    audit_seq: int | None

    def extension(self) -> dict[str, Any]:
        return {} if self.cost_micro_usd is None else {"cost_usd": usd(self.cost_micro_usd)}


class Ledger:
    def __init__(
        self,
        store: Store,
        pricing: Pricing,
        *,
        audit_key: bytes | None,
        session_keep: int,
        session_ttl: int,
        clock: Clock = utc_now,
        rules_cache_seconds: float = 0,
    ) -> None:
        self.store = store
        self.pricing = pricing
        self.budgets = Budgets(store, pricing, clock, cache_seconds=rules_cache_seconds)
        self.audit = audit.AuditWriter(store, audit_key)
        self.session_keep = session_keep
        self.session_ttl = session_ttl
        self.alerts: AlertWatch | None = None  # budget threshold alerts (AppContext.build sets it)

    @property
    def audit_key(self) -> bytes | None:
        """The HMAC key of the audit chain (None: plain SHA-256); swapped on a secret refresh."""
        return self.audit.key

    @audit_key.setter
    def audit_key(self, key: bytes | None) -> None:
        self.audit.key = key

    def book(self, principal: Principal, pool: str | None, request_sha256: str) -> Booking:
        """A request's booking on ``pool`` (the key's own when None): 403 unless the key may spend there."""
        booking = Booking(principal, pool=pool or principal.pool, request_sha256=request_sha256)
        principal.check_pool(booking.pool)
        return booking

    async def check_pool(self, booking: Booking) -> None:
        """403 before anything starts when the pool is not the key's or does not exist (agent loops,
        which reserve per turn, check here first)."""
        booking.principal.check_pool(booking.pool)
        if await self.store.get_pool(booking.principal.tenant, booking.pool) is None:
            raise UnknownPool(booking.principal.tenant, booking.pool)

    async def reserve(
        self,
        booking: Booking,
        request_id: str,
        tokens: int,
        holder: Holder,
        calls: Sequence[Call] | None = None,
        uses: Mapping[str, ToolUses] | None = None,
    ) -> None:
        """One conditional write for ``tokens`` (an upper bound over every deployment that may serve);
        429 budget_exceeded before any upstream call when it does not fit, 403 when the key may not spend
        from the pool or the pool does not exist (every spending path comes here: chat, messages,
        completions, embeddings, each loop turn). ``holder`` (key, provider, model) is what the sweep's
        ``abandoned`` entry names if the request never settles.

        The caller's TPM rate limits count ``tokens`` first (``tollgate.limits``; given back on finish if
        the request goes no further); then the USD budgets that apply (the key's, the pool's) hold the
        most ``calls`` (provider, model, tokens: every candidate; default the holder's model for
        ``tokens``) and the billed tool uses their providers may run (``uses``: web searches, ...) can
        cost. With alerts, every budget held (or the one that refused) is checked against its rule's
        thresholds, from the rules read here (no extra read)."""
        principal = booking.principal
        principal.check_pool(booking.pool)
        if booking.admission is not None:
            await booking.admission.admit_tokens(tokens)
        calls = calls if calls is not None else [(holder.provider, holder.model, tokens)]
        priced = self.budgets.cost_bound(calls, uses)
        holder = replace(holder, cost_bound=priced[0])  # what the sweep charges if nobody settles
        tenant = principal.tenant
        rules = await self.budgets.applicable(tenant, principal.key_id, booking.pool)
        try:
            holds = await self.budgets.reserve(
                tenant, principal.key_id, booking.pool, request_id, priced, rules
            )
        except BudgetExceeded as refusal:
            if self.alerts is not None:
                await budget_alerts.usd_refused(self.alerts, tenant, rules, refusal, self.budgets.clock)
            raise
        try:
            watched = self.alerts is not None and budget_alerts.pool_watched(rules, booking.pool)
            pool = await self.store.reserve(
                tenant,
                booking.pool,
                request_id,
                tokens,
                format_time(self.budgets.clock()),  # the clock the sweep and the USD holds use
                holder,
                totals_only=True,
                leased=not watched,
            )
        except BaseException as exc:
            # nothing was spent, so nothing stays held, also when cancelled: a refusal wrote no hold, but an
            # error or a cancel may come after the hold was written
            with anyio.CancelScope(shield=True):
                if not isinstance(exc, (Overdrawn, UnknownPool)):
                    await self._release_hold(tenant, booking.pool, request_id, tokens)
                await self.budgets.release(tenant, request_id, holds)
            if isinstance(exc, Overdrawn):
                if self.alerts is not None:
                    await budget_alerts.pool_refused(self.alerts, self.store, tenant, rules, booking.pool)
                raise pool_exhausted(booking.pool, tokens, exc.available) from exc
            raise
        booking.reservation_id, booking.reserved, booking.holder = request_id, tokens, holder
        booking.usd_holds, booking.rules = holds, rules
        if self.alerts is not None:
            await budget_alerts.reserved(self.alerts, tenant, rules, holds, pool)

    async def _release_hold(self, tenant: str, pool: str, request_id: str, tokens: int) -> None:
        """Give back a token hold that a failed or cancelled reserve may have written (no upstream call was
        made: nothing is charged); if the store fails here too, the sweep charges the hold later."""
        try:
            await self.store.settle(tenant, pool, request_id, 0, reserved=tokens, totals_only=True)
        except Exception as error:  # the reserve's own error is the one the caller gets
            log_event(logger, logging.WARNING, "reserve_release_failed", request_id=request_id, error=error)

    async def load_history(self, booking: Booking, session_id: str) -> list[Message]:
        history, version = await self.store.load_session(booking.principal.tenant, session_id)
        booking.session_id, booking.session_version, booking.session_history = session_id, version, history
        return [Message.model_validate(m) for m in history]

    async def finish(
        self,
        booking: Booking,
        charge: Charge,
        status: str,
        answer: dict[str, Any] | None,
        *,
        save_session: bool = True,
    ) -> Settlement:
        """Settle, audit and save the session concurrently; failures are logged, never raised.

        The reservation is released from the booking, so a loop's next turn can reserve anew and nothing
        is ever settled twice; a loop saves its session once, at the end (``save_session``)."""
        usage = charge.usage
        cost = self.pricing.cost(charge.provider, charge.model, usage)
        entry = self._entry(booking, charge, status, cost, answer)
        turn = await self._audit_turn(entry)
        try:
            audited = self.audit.append(entry) if turn is None else self.audit.append_in_turn(entry, turn)
            jobs = [audited, *self._money_jobs(booking, entry, cost, usage.total_tokens)]
            if save_session and booking.session_id is not None and status == "ok" and answer is not None:
                jobs.append(self._save_session(booking, answer))
            gathered = asyncio.gather(*jobs, return_exceptions=True)
            group_writes(self.store)  # SQLite: the settles, the rollup and the audit link in one transaction
            results = await gathered
        finally:
            if turn is not None:
                turn.give_back()
        booking.reservation_id, booking.reserved = None, 0
        for result in results:
            if isinstance(result, BaseException):
                log_event(
                    logger,
                    logging.ERROR,
                    "accounting_failed",
                    request_id=charge.request_id,
                    error=f"{type(result).__name__}: {result}",
                )
        seq = results[0].seq if isinstance(results[0], AuditEntry) else None
        return Settlement(cost_micro_usd=cost, audit_seq=seq)

    async def _audit_turn(self, entry: AuditEntry) -> audit.Turn | None:
        """On a store that groups writes (SQLite), the tenant's audit turn, taken before any write starts:
        then the entry is written in the same transaction as the request's money, so a process killed at
        any moment leaves the request audited and settled, or neither (held, for the sweep, which audits
        what it charges). Elsewhere (or when the turn cannot be taken) None: the append waits its turn."""
        if not groups_writes(self.store):
            return None
        try:
            return await self.audit.take_turn(entry.tenant, entry.at)
        except Exception as exc:  # the append tries again, and its failure is logged with the others
            log_event(logger, logging.WARNING, "audit_turn_failed", request_id=entry.request_id, error=exc)
            return None

    def _money_jobs(
        self, booking: Booking, entry: AuditEntry, cost: int | None, actual: int
    ) -> list[Coroutine[Any, Any, Any]]:
        """The writes of the request's money, to start beside its audit entry: the cost rollup (one atomic
        add), the token settle, each USD hold (a job of its own, so that on SQLite it is in the group's
        transaction too) and the TPM correction."""
        jobs: list[Coroutine[Any, Any, Any]] = [self.store.add_rollup(rollups.change_of(entry))]
        if booking.reservation_id is not None:
            holds, booking.usd_holds = booking.usd_holds, []
            jobs.append(self._settle(booking, actual))
            rid, tenant = booking.reservation_id, booking.principal.tenant
            jobs += [self._settle_usd(tenant, rid, hold, cost, booking.rules) for hold in holds]
        if booking.admission is not None:
            jobs.append(booking.admission.settle(actual))
        return jobs

    async def save_session(self, booking: Booking, request_id: str, answer: dict[str, Any]) -> None:
        """Save the session alone (a loop's final answer); failures are logged, never raised."""
        if booking.session_id is None:
            return
        try:
            await self._save_session(booking, answer)
        except Exception as exc:
            log_event(
                logger,
                logging.ERROR,
                "accounting_failed",
                request_id=request_id,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _settle(self, booking: Booking, actual: int) -> None:
        """One conditional write carrying the tokens reserved (no read); when it corrected the sweep's
        charge instead, the sweep's estimate leaves the cost rollups (the request counts once). The USD
        holds settle beside it (``_settle_usd``), whatever happens to the tokens. The overdraft checks
        (logs, alerts) run after every money write, and their failure is logged, never lost money."""
        assert booking.reservation_id is not None
        tenant, rid = booking.principal.tenant, booking.reservation_id
        settled = await self.store.settle(
            tenant, booking.pool, rid, actual, reserved=booking.reserved, totals_only=True
        )
        if settled is not None and settled.corrected is not None:
            tokens, swept_at = settled.corrected
            holder = booking.holder or Holder()
            estimate = Reservation(tenant, booking.pool, rid, tokens, swept_at, holder)
            change = rollups.abandoned_change(self.pricing, estimate, swept_at)
            await self.store.add_rollup(change.negated())
        check = overdraft.tokens_settled(self.alerts, booking.rules, settled, rid, booking.reserved, actual)
        await _checked(rid, check)

    async def _settle_usd(
        self,
        tenant: str,
        request_id: str,
        hold: Hold,
        cost: int | None,
        rules: Sequence[BudgetRule] = (),
    ) -> None:
        """One USD hold: its real cost when priced (an unpriced model is refused under a USD budget),
        else its bound; then its overdraft check."""
        charged = hold.amount if cost is None else cost
        [counter] = await self.budgets.settle(tenant, request_id, [hold], charged)
        check = overdraft.usd_settled(self.alerts, tenant, rules, hold, counter, request_id, charged)
        await _checked(request_id, check)

    async def audit_abandoned(self, reservation: Reservation, at: str) -> AuditEntry:
        """The sweep's entry for a reservation nobody settled: status ``abandoned`` (itself the mark that
        the usage is an estimate), charged its reserved upper bound, counted as completion tokens and
        priced as such (an upper bound of the cost)."""
        entry = rollups.abandoned_entry(self.pricing, reservation, at, answer_digest(None))
        return await self.audit.append(entry)

    def _entry(
        self,
        booking: Booking,
        charge: Charge,
        status: str,
        cost: int | None,
        answer: dict[str, Any] | None,
    ) -> AuditEntry:
        return AuditEntry(
            tenant=charge.tenant,
            seq=0,
            at=now_str(),
            request_id=charge.request_id,
            key_id=charge.key_id,
            provider=charge.provider,
            model=charge.model,
            status=status,
            prompt_tokens=charge.usage.prompt_tokens,
            completion_tokens=charge.usage.completion_tokens,
            cost_micro_usd=cost,
            request_sha256=booking.request_sha256,
            response_sha256=answer_digest(answer),
            prev_hash="",
            hash="",
            details=charge.details(),
        )

    async def _save_session(self, booking: Booking, answer: dict[str, Any]) -> None:
        """Append this turn; on a concurrent change, reload and append again (bounded)."""
        assert booking.session_id is not None
        tenant, sid = booking.principal.tenant, booking.session_id
        history, version = booking.session_history, booking.session_version
        for _ in range(SESSION_SAVE_ATTEMPTS):
            messages = (history + booking.new_messages + [answer])[-self.session_keep :]
            if await self.store.save_session(tenant, sid, messages, version, after(self.session_ttl)):
                return
            history, version = await self.store.load_session(tenant, sid)
        raise RuntimeError(f"session {sid} changed {SESSION_SAVE_ATTEMPTS} times while saving")


async def _checked(request_id: str, check: Coroutine[Any, Any, None]) -> None:
    """An overdraft check (log lines, alert outbox) after the money is written: a failure is logged."""
    try:
        await check
    except Exception as exc:
        log_event(
            logger,
            logging.ERROR,
            "overdraft_check_failed",
            request_id=request_id,
            error=f"{type(exc).__name__}: {exc}",
        )
