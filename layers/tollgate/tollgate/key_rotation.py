"""Key rotation: a new secret for the same key id; the old secret works until the grace ends, then 401.

Everything that hangs off the key id stays: tenant, pools, allow-list, rate limits, budgets, and the
audit entries (they name the key id, never the secret). The new secret is returned once and never logged.

How long the old secret can still work: until ``rotation + grace`` in the store; an instance that cached
the key before the rotation accepts it until its cache entry ends, so at most
``max(grace, TOLLGATE_KEY_CACHE_SECONDS)`` after the rotation (the rotating process forgets it at once).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import BadRequest, NotFound
from .keys import generate_key, hash_key
from .store.base import ApiKey, Store
from .timeutil import format_time

MAX_GRACE_SECONDS = 30 * 86400


async def rotate(store: Store, key_id: str, grace_seconds: int, now: datetime) -> tuple[str, ApiKey, str]:
    """(the new secret, the key's record, until when the old secret works). 404 for an unknown key id,
    400 ``key_revoked`` for a revoked key; nothing is written then."""
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise BadRequest(f"grace_seconds must be 0..{MAX_GRACE_SECONDS}", param="grace_seconds")
    found = await store.get_key(key_id)
    if found is None:
        raise NotFound(f"no key {key_id!r}", param="key_id")
    if found.revoked_at is not None:
        raise BadRequest(f"key {key_id!r} is revoked; create a new key", param="key_id", code="key_revoked")
    secret = generate_key()
    until = format_time(now + timedelta(seconds=grace_seconds))
    record = await store.rotate_key(key_id, hash_key(secret), format_time(now), until)
    if record is None:
        raise NotFound(f"no key {key_id!r}", param="key_id")
    return secret, record, until
