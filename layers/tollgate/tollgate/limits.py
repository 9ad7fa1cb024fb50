"""Rate limits: requests and tokens per minute, per key and per tenant, counted in the store.

On Lambda every invocation is a replica, so nothing is counted in a process. A minute is a bucket
(``<tenant>#tenant#rpm#<minute>``, ``<tenant>#key#<id>#tpm#<minute>``: the minute is part of the counter's
key, so a new minute starts clean without a reset job) and admission is one atomic conditional update per
limit that applies (``LimitStore.count_in_bucket``): concurrent gateways can never admit more than the limit
within a bucket. A request is counted when its caller is resolved (RPM); its reserved token estimate when
the ledger reserves (TPM), and the difference to the real usage is added back to the same bucket on settle.

The limits themselves are read once per tenant and cached for ``TOLLGATE_KEY_CACHE_SECONDS`` like keys
(``forget`` drops a tenant here at once after a change; other instances see it within the cache time).
A caller with no limit costs no store round trip beyond that cached read.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import RateLimited
from .keys import Principal
from .store.limits_base import BUCKET_KEEP_SECONDS, LimitStore, RateLimit
from .timeutil import Clock, format_time, utc_now

BUCKET_SECONDS = 60
REQUESTS, TOKENS = "requests", "tokens"
_BUCKET_KIND = {REQUESTS: "rpm", TOKENS: "tpm"}


class RateLimitExceeded(RateLimited):
    default_code = "rate_limit_exceeded"


def reset_text(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format: ``1s``, ``59s``, ``6m0s``."""
    whole = max(0, math.ceil(seconds))
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


@dataclass(slots=True)
class Window:
    """The tightest limit of one kind this request met: for the x-ratelimit headers."""

    limit: int
    remaining: int
    reset_seconds: float


@dataclass(slots=True)
class Admission:
    """Per request: the limits that apply to its caller, what it has counted, and its headers."""

    store: LimitStore
    limits: tuple[RateLimit, ...]
    clock: Clock
    windows: dict[str, Window] = field(default_factory=dict)
    pending: list[tuple[str, int]] = field(default_factory=list)  # TPM buckets and the tokens admitted

    def _bucket(self, limit: RateLimit, kind: str, at: datetime | None = None) -> tuple[str, int, float]:
        """The bucket of this minute (of ``at``, default now), its expiry (epoch seconds), and the seconds
        until it ends."""
        now = (at or self.clock()).timestamp()
        minute = int(now // BUCKET_SECONDS)
        end = (minute + 1) * BUCKET_SECONDS
        return f"{limit.scope}#{_BUCKET_KIND[kind]}#{minute}", end + BUCKET_KEEP_SECONDS, end - now

    async def _count(self, kind: str, amount: int, at: datetime | None = None) -> list[str]:
        """Count ``amount`` against every limit of ``kind``; 429 when one is full (what the others
        counted for this request is given back). Returns the buckets counted."""
        chosen = [(lim, lim.rpm if kind == REQUESTS else lim.tpm) for lim in self.limits]
        applied = [(lim, cap) for lim, cap in chosen if cap is not None]
        if not applied:
            return []
        buckets = [self._bucket(lim, kind, at) for lim, _ in applied]
        counted = await asyncio.gather(
            *(
                self.store.count_in_bucket(bucket, amount, cap, expires)
                for (_, cap), (bucket, expires, _) in zip(applied, buckets, strict=True)
            )
        )
        refused: tuple[RateLimit, int, float] | None = None
        for (lim, cap), (_, _, reset), result in zip(applied, buckets, counted, strict=True):
            remaining = max(0, cap - result.count)
            window = self.windows.get(kind)
            if window is None or remaining < window.remaining:
                self.windows[kind] = Window(cap, remaining, reset)
            if not result.admitted and refused is None:
                refused = (lim, cap, reset)
        if refused is not None:
            await self._give_back(
                [(b, amount) for (b, e, _), r in zip(buckets, counted, strict=True) if r.admitted]
            )
            raise self._exceeded(kind, amount, *refused)
        return [bucket for bucket, _, _ in buckets]

    async def _give_back(self, counted: list[tuple[str, int]]) -> None:
        expires = int(self.clock().timestamp()) + BUCKET_SECONDS + BUCKET_KEEP_SECONDS
        await asyncio.gather(
            *(self.store.add_to_bucket(b, -amount, expires) for b, amount in counted if amount)
        )

    @staticmethod
    def _exceeded(kind: str, amount: int, limit: RateLimit, cap: int, reset: float) -> RateLimitExceeded:
        who = f"key {limit.key_id}" if limit.key_id is not None else f"tenant {limit.tenant}"
        if kind == REQUESTS:
            what = f"rate limit of {cap} requests per minute reached for {who}"
        elif amount > cap:
            what = f"this request may need {amount} tokens, more than the {cap} tokens per minute of {who}"
        else:
            what = f"rate limit of {cap} tokens per minute reached for {who} (this request may need {amount})"
        return RateLimitExceeded(f"{what}; retry in {reset_text(reset)}", retry_after=max(1.0, reset))

    async def admit_request(self) -> None:
        """Count this request against every RPM limit that applies (429 when one is full)."""
        await self._count(REQUESTS, 1)

    async def admit_tokens(self, tokens: int, at: datetime | None = None) -> None:
        """Count the reserved estimate against every TPM limit that applies (429 when it does not fit),
        in the buckets of ``at``'s minute (default now: a reserve that records its time passes it, so a
        later correction finds the bucket it was counted in)."""
        for bucket in await self._count(TOKENS, tokens, at):
            self.pending.append((bucket, tokens))

    async def settle(self, actual: int) -> None:
        """Correct the admitted estimates to the real usage, in the buckets they were counted in."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        expires = int(self.clock().timestamp()) + BUCKET_SECONDS + BUCKET_KEEP_SECONDS
        await asyncio.gather(
            *(
                self.store.add_to_bucket(b, actual - admitted, expires)
                for b, admitted in pending
                if actual != admitted
            )
        )

    async def correct(self, held: int, held_at: datetime, actual: int) -> None:
        """A hoosh report (``/v1/tokens/report``, perhaps from another process): correct the ``held``
        tokens its reserve counted at ``held_at`` to ``actual``, in the buckets of that minute (the limits
        that apply now). Only while that minute is the current one: a closed bucket admits nothing more,
        so a report that comes later has nothing to correct (and writes nothing)."""
        if actual == held:
            return
        minute = int(held_at.timestamp() // BUCKET_SECONDS)
        if minute != int(self.clock().timestamp() // BUCKET_SECONDS):
            return
        buckets = [self._bucket(lim, TOKENS) for lim in self.limits if lim.tpm is not None]
        await asyncio.gather(*(self.store.add_to_bucket(b, actual - held, e) for b, e, _ in buckets))

    async def status(self) -> list[dict[str, Any]]:
        """Each limit with this minute's use: for the caller's own ``GET /v1/limits`` (no counting)."""
        views = []
        for limit in self.limits:
            view: dict[str, Any] = {"scope": "key" if limit.key_id else "tenant", "key_id": limit.key_id}
            for kind, cap in ((REQUESTS, limit.rpm), (TOKENS, limit.tpm)):
                if cap is None:
                    continue
                bucket, _, reset = self._bucket(limit, kind)
                used = await self.store.read_bucket(bucket)
                resets_at = format_time(self.clock() + timedelta(seconds=reset))
                view[kind] = {
                    "limit": cap,
                    "used": used,
                    "remaining": max(0, cap - used),
                    "resets_at": resets_at,
                }
            views.append(view)
        return views

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit headers for each kind with a limit that applies."""
        headers: dict[str, str] = {}
        for kind, window in self.windows.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(window.remaining)
            headers[f"x-ratelimit-reset-{kind}"] = reset_text(window.reset_seconds)
        return headers


class RateLimits:
    """What one process holds: the store, the cached limits per tenant, the clock."""

    def __init__(self, store: LimitStore, *, cache_seconds: float, clock: Clock = utc_now) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, tuple[RateLimit, ...]]] = {}

    async def _tenant(self, tenant: str) -> tuple[RateLimit, ...]:
        hit = self._cache.get(tenant)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        limits = tuple(await self._store.tenant_limits(tenant))
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[tenant] = (time.monotonic() + self._ttl, limits)
        return limits

    async def admission(self, principal: Principal) -> Admission | None:
        """The caller's admission: None (nothing to count) when no limit applies to its tenant or key."""
        applied = tuple(
            lim
            for lim in await self._tenant(principal.tenant)
            if lim.key_id is None or lim.key_id == principal.key_id
        )
        return Admission(self._store, applied, self._clock) if applied else None

    def forget(self, tenant: str) -> None:
        self._cache.pop(tenant, None)
