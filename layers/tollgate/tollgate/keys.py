"""Virtual API keys: generation, hashing, and the authenticator the app runs on every request.

Keys are ``tg-`` + 32 random bytes (url-safe base64). Only their SHA-256 is stored; a lookup is by hash
and the stored hash is compared with ``hmac.compare_digest``. Lookups are cached in-process for
``TOLLGATE_KEY_CACHE_SECONDS``, which bounds how long a revocation takes to bite.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field

from .config import PROVIDER_ALIASES
from .errors import Forbidden, Unauthorized
from .store.base import ApiKey, KeyStore, Store
from .timeutil import Clock, after, format_time, now_str, utc_now

PREFIX = "tg-"
_GLOB = re.compile(r"[*?\[]")


def generate_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key_record(
    tenant: str,
    *,
    name: str | None = None,
    models: tuple[str, ...] | None = None,
    pool: str = "default",
    pools: tuple[str, ...] = (),
    expires_in: int | None = None,
) -> tuple[str, ApiKey]:
    """A fresh key and the record to store (the key itself is shown once and never stored)."""
    key = generate_key()
    record = ApiKey(
        key_id="key_" + secrets.token_hex(8),
        key_hash=hash_key(key),
        tenant=tenant,
        created_at=now_str(),
        name=name,
        models=models,
        pool=pool,
        pools=tuple(dict.fromkeys(p for p in pools if p != pool)),
        expires_at=after(expires_in) if expires_in else None,
    )
    return key, record


async def store_key(store: Store, record: ApiKey) -> list[str]:
    """Store a new key, then create its pools that do not exist yet (unlimited; an existing pool's
    capacity is never changed), so that a fresh key works at once. Returns the pools it created."""
    await store.create_key(record)
    return [pool for pool in record.all_pools if await store.create_pool(record.tenant, pool)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key's tenant, or the open loopback mode's ``local`` tenant."""

    tenant: str
    key_id: str
    pool: str = "default"
    models: tuple[str, ...] | None = None
    pools: tuple[str, ...] = ()  # extra pools the operator allows besides ``pool``
    # the hash of the key presented (None: open mode), to check the key again during a long request
    key_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def spendable_pools(self) -> list[str]:
        """Its own pool first, then the others its operator allowed."""
        return [self.pool, *(p for p in self.pools if p != self.pool)]

    def check_pool(self, pool: str) -> None:
        """A key spends only from the pools its operator gave it (403 ``pool_not_allowed``)."""
        if pool != self.pool and pool not in self.pools:
            allowed = ", ".join((self.pool, *self.pools))
            raise Forbidden(
                f"this key may not spend from pool {pool!r} (its pools: {allowed})",
                param="pool",
                code="pool_not_allowed",
            )

    def allows(self, provider: str, model: str, *, public_name: str | None = None) -> bool:
        """Whether the provider that will be called and its upstream model match the key's allow-list.

        ``provider`` is canonical. A pattern that starts with a provider alias (``openai/*``,
        ``anthropic/claude-*``) matches only that provider's models; one whose first segment is a glob
        (``*/gpt-4o``) matches ``provider/model``; any other pattern (``gpt-4o*``, ``meta-llama/*``) matches
        the upstream model name on any provider, and a routing config's public name (``smart``)."""
        if self.models is None:
            return True
        return any(
            pattern_allows(allowed, provider, model)
            or (public_name is not None and public_allows(allowed, public_name))
            for allowed in self.models
        )


def pattern_allows(pattern: str, provider: str, model: str) -> bool:
    """One allow-list pattern against the canonical provider and upstream model (see ``Principal.allows``)."""
    prefix, slash, rest = pattern.partition("/")
    if slash:
        canonical = PROVIDER_ALIASES.get(prefix.lower())
        if canonical is not None:
            return canonical == provider and fnmatch.fnmatchcase(model, rest)
        if _GLOB.search(prefix):
            return fnmatch.fnmatchcase(f"{provider}/{model}", pattern)
    return fnmatch.fnmatchcase(model, pattern)


def public_allows(pattern: str, public_name: str) -> bool:
    """A pattern against a routing config's public model name; provider-prefixed patterns never match
    one (``openai/*`` must not admit a public name ``openai/x`` that Bedrock serves)."""
    prefix, slash, _ = pattern.partition("/")
    if slash and PROVIDER_ALIASES.get(prefix.lower()) is not None:
        return False
    return fnmatch.fnmatchcase(public_name, pattern)


OPEN_PRINCIPAL = Principal(tenant="local", key_id="open")


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """``Authorization: Bearer <key>`` (openai SDK) or ``x-api-key: <key>`` (anthropic SDK)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


class Authenticator:
    """Key lookups with a small TTL cache; open mode while no key was ever created."""

    def __init__(
        self, store: KeyStore, *, cache_seconds: float, allow_open: bool, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = cache_seconds
        self.allow_open = allow_open
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._keys_exist = False

    async def keys_exist(self) -> bool:
        """Rechecked per request until the first key appears; keys never disappear (revoked ones count)."""
        if not self._keys_exist:
            self._keys_exist = await self._store.any_keys()
        return self._keys_exist

    async def authenticate(self, key: str | None, *, loopback: bool) -> Principal:
        # open mode: any (or no) key from loopback while no key exists (SDKs insist on sending one)
        if self.allow_open and loopback and not await self.keys_exist():
            return OPEN_PRINCIPAL
        if key is None:
            raise Unauthorized("missing API key: send Authorization: Bearer <key> or x-api-key")
        presented = hash_key(key)
        record = await self._valid(presented)
        return Principal(
            tenant=record.tenant,
            key_id=record.key_id,
            pool=record.pool,
            models=record.models,
            pools=record.pools,
            key_hash=presented,
        )

    async def recheck(self, principal: Principal) -> None:
        """The key of a request that runs long (an agent loop, before each further turn), checked again:
        401 once it is revoked or expired (in another process, within ``TOLLGATE_KEY_CACHE_SECONDS``, as
        for a new request). Open mode has no key to check."""
        if principal.key_hash is not None:
            await self._valid(principal.key_hash)

    async def _valid(self, presented: str) -> ApiKey:
        record = await self._lookup(presented)
        if record is None or not hmac.compare_digest(record.key_hash, presented):
            raise Unauthorized("invalid API key")
        now = format_time(self._clock())
        if record.revoked_at is not None:
            raise Unauthorized("this API key was revoked", code="key_revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthorized("this API key has expired", code="key_expired")
        return record

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache at once (revoked here). Other processes and Lambda
        instances notice within ``TOLLGATE_KEY_CACHE_SECONDS``."""
        cached = self._cache.items()
        stale = [h for h, (_, record) in cached if record is not None and record.key_id == key_id]
        for key_hash in stale:
            del self._cache[key_hash]

    async def _lookup(self, key_hash: str) -> ApiKey | None:
        if self._ttl > 0:
            hit = self._cache.get(key_hash)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        record = await self._store.key_by_hash(key_hash)
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_hash] = (time.monotonic() + self._ttl, record)
        return record
