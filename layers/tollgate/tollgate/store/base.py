"""One small Protocol per aggregate, and the records they hold.

Every invariant is one conditional write on one item/row (DESIGN.md §5): a backend implements the
primitives below; hashing, canonical JSON, verification, pricing and aggregation live outside the
backends (``tollgate.audit``, ``tollgate.accounting``, ``tollgate.keys``) so both stores behave alike.

Canonical data: money is integer micro-USD (``None`` = unpriced), times are ``timeutil.FORMAT`` strings,
token counts are ints. No floats anywhere that is hashed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import Forbidden, TollgateError
from .alert_base import AlertStore
from .audit_base import AuditStore, CostStore
from .budget_records import UsdBudgetStore
from .limits_base import LimitStore
from .rollup_base import RollupStore

# ------------------------------------------------------------------------------------------------ keys


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A virtual key as stored: only the SHA-256 of the key itself, never the key."""

    key_id: str
    key_hash: str
    tenant: str
    created_at: str
    name: str | None = None
    models: tuple[str, ...] | None = None  # None: every model
    pool: str = "default"
    expires_at: str | None = None
    revoked_at: str | None = None
    pools: tuple[str, ...] = ()  # extra pools the operator lets this key spend from, besides ``pool``

    @property
    def all_pools(self) -> tuple[str, ...]:
        """Every pool the key may spend from: its own first, then the extra ones."""
        return (self.pool, *(p for p in self.pools if p != self.pool))


class KeyExists(TollgateError):
    """A key with this hash or key_id already exists."""


class KeyStore(Protocol):
    async def create_key(self, key: ApiKey) -> None:
        """Store a new key; raises ``KeyExists`` when its hash or key_id is taken."""

    async def key_by_hash(self, key_hash: str) -> ApiKey | None: ...

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (revoked and expired included), oldest first; one tenant's when given."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id (its current secret's record), revoked or not; None when there is none.
        One lookup, whatever the number of keys."""

    async def page_keys(self, tenant: str | None, after: str | None, limit: int) -> list[ApiKey]:
        """At most ``limit`` keys (one tenant's when given) whose key_id sorts after ``after``, in key_id
        order: a page of the listing, the last key_id of one page being where the next starts."""

    async def revoke_key(self, key_id: str, at: str) -> ApiKey | None:
        """Mark revoked (idempotent: the first revocation time stays); None when no such key."""

    async def any_keys(self) -> bool:
        """Whether any key was ever created (revoked ones count): open mode ends with the first key."""

    async def rotate_key(self, key_id: str, new_hash: str, at: str, old_until: str) -> ApiKey | None:
        """Give the key ``new_hash`` (same id, tenant, pools, allow-list, limits); the old hash (and those
        of earlier rotations still in their grace) is still found by ``key_by_hash``, with ``expires_at``
        at most ``old_until``, and is revoked with the key. None when there is no such key."""


# --------------------------------------------------------------------------------------------- budgets


class Overdrawn(TollgateError):
    """A reservation did not fit; ``available`` is what the pool had left (never below 0), ``leased``
    what of the pool writers held in leases then (DynamoDB; the store reclaims them before refusing)."""

    def __init__(self, available: int, leased: int = 0) -> None:
        super().__init__(f"budget exhausted: {available} tokens available")
        self.available = available
        self.leased = leased


class UnknownPool(Forbidden):
    """The pool does not exist: only an operator creates pools (``set_capacity``, ``create_pool``)."""

    default_code = "unknown_pool"

    def __init__(self, tenant: str, pool: str) -> None:
        super().__init__(
            f"pool {pool!r} does not exist; an operator creates it "
            f"(tollgate budgets set --tenant {tenant} --pool {pool} --tokens N)",
            param="pool",
        )
        self.tenant, self.pool = tenant, pool


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a reservation: what the sweep's ``abandoned`` audit entry of it needs."""

    key_id: str = ""
    provider: str = ""
    model: str = ""
    # the most the request can cost, over every candidate that may serve it (micro-USD, rounded up: what a
    # USD budget holds); 0 when a candidate has no price, or the hold was written before this field
    cost_bound: int = 0


NOBODY = Holder()


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reservation the sweep charged (its upper bound ``tokens``) because nobody settled it."""

    tenant: str
    pool: str
    reservation_id: str
    tokens: int
    at: str  # when it was reserved
    holder: Holder = NOBODY


BeforeCharge = Callable[[Reservation], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Pool:
    tenant: str
    pool: str
    capacity: int | None  # None: unlimited, but still counted
    used: int
    reserved: int
    reservations: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (tokens, reserved at)
    # id -> who holds it (open reservations); bookkeeping for the sweep, left out of comparisons
    holders: dict[str, Holder] = field(default_factory=dict, compare=False)
    swept: dict[str, tuple[int, str]] = field(default_factory=dict)  # id -> (tokens charged, swept at)
    # set by a settle that corrected the sweep's charge: the marker it took, (tokens charged, swept at)
    corrected: tuple[int, str] | None = field(default=None, compare=False)

    @property
    def remaining(self) -> int | None:
        return None if self.capacity is None else self.capacity - self.used - self.reserved


class BudgetStore(Protocol):
    async def set_capacity(self, tenant: str, pool: str, tokens: int | None) -> Pool:
        """Create the pool or change its capacity (None: unlimited); used and reservations stay."""

    async def create_pool(self, tenant: str, pool: str) -> bool:
        """Create an unlimited pool unless it exists (an existing pool is never changed); whether created."""

    async def reserve(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        tokens: int,
        at: str,
        holder: Holder = NOBODY,
        *,
        totals_only: bool = False,
        leased: bool = False,
    ) -> Pool:
        """One conditional write: hold ``tokens`` under ``reservation_id`` if they fit.

        The pool must exist (``UnknownPool`` otherwise: the data plane never creates one). Settled
        exactly once; reserving an id already held changes nothing. ``holder`` is kept with the
        reservation for the sweep. Raises ``Overdrawn`` when it does not fit.

        ``totals_only``: the caller reads only the pool's totals (capacity, used, reserved); the store
        may then leave ``reservations``, ``holders`` and ``swept`` empty rather than read them (the hot path).

        ``leased``: the caller reads nothing of the answer's totals either (no threshold alerts on this
        pool); a store may then hold the tokens in a lease of this writer's (DynamoDB's escrow leases,
        ``dynamodb_leases``), whose answer carries the pool's totals as of the writer's last lease. The
        settle finds the reservation wherever it is held; the views and the sweep see every lease.
        """

    async def settle(
        self,
        tenant: str,
        pool: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
        totals_only: bool = False,
    ) -> Pool | None:
        """One conditional write: release reservation ``reservation_id`` and charge ``actual``.

        ``reserved``: the tokens the caller reserved under that id, when it knows them (the ledger does);
        then the write itself carries the condition and nothing is read first.

        When the sweep took the reservation meanwhile (its ``swept`` marker is there), the charge is
        corrected instead: ``actual`` minus what the sweep charged, and the marker goes (the pool returned
        then carries the marker taken in ``corrected``, for the cost rollups). Exactly once:
        returns None (and changes nothing) when neither the reservation nor a marker is there.
        ``totals_only`` as for ``reserve`` (``corrected`` is always set).
        """

    async def settle_anonymous(self, tenant: str, pool: str, reserved: int, actual: int) -> Pool | None:
        """Legacy hoosh report: release ``reserved`` anonymous tokens (held by an older tollgate, which
        reserved without ids) and charge ``actual``; None if fewer are held."""

    async def get_pool(self, tenant: str, pool: str) -> Pool | None: ...

    async def list_pools(self, tenant: str | None = None) -> list[Pool]: ...

    async def sweep_reservations(
        self, older_than: str, at: str, before_charge: BeforeCharge | None = None
    ) -> list[Reservation]:
        """Charge the reservations made before ``older_than`` (a crashed function never settled them).

        For each, ``before_charge`` runs first (the sweep's audit entry: written before the charge, so a
        crash in between leaves the reservation for the next sweep rather than a charge without an
        entry; its error stops the sweep). Then one conditional write on its pool: the reservation goes,
        its upper bound is charged, and a ``swept`` marker (tokens, ``at``) stays so that a late
        ``settle`` corrects the charge. Markers swept before ``older_than`` are dropped first (their
        requests are long dead). Returns the reservations it charged (not those settled meanwhile).
        """


# -------------------------------------------------------------------------------------------- sessions


class SessionStore(Protocol):
    async def load_session(self, tenant: str, session_id: str) -> tuple[list[dict[str, Any]], int]:
        """The stored messages and a version for ``save_session``; ([], 0) when none or expired."""

    async def save_session(
        self,
        tenant: str,
        session_id: str,
        messages: list[dict[str, Any]],
        version: int,
        expires_at: str,
    ) -> bool:
        """Replace the messages if the stored version is still ``version`` (0: must not exist, an
        expired session counts as none);
        False when another request changed the session meanwhile (the caller reloads and retries)."""

    async def delete_session(self, tenant: str, session_id: str) -> bool: ...

    async def sweep_sessions(self, now: str) -> int:
        """Delete expired sessions (SQLite; DynamoDB's TTL does it there); returns how many."""


# ------------------------------------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A Responses API answer kept for ``previous_response_id`` and ``GET /v1/responses/{id}``.

    ``body`` is JSON (the response object, its input items, the conversation to continue from); it is
    the wire module's business, the store only keeps it by tenant and id until ``expires_at``."""

    tenant: str
    response_id: str
    body: dict[str, Any]
    created_at: str
    expires_at: str


class ResponseStore(Protocol):
    async def put_response(self, record: StoredResponse) -> None:
        """Store (or replace) the response under its tenant and id."""

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        """That tenant's response; None when there is none, it expired, or it is another tenant's."""

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        """Delete that tenant's response; False when there was none (expired ones count as none)."""

    async def sweep_responses(self, now: str) -> int:
        """Delete expired responses (SQLite; DynamoDB's TTL does it there); returns how many."""


# ------------------------------------------------------------------------------------------ containers


class ContainerStore(Protocol):
    """Which tenant a provider's code execution container belongs to (``tollgate.containers``)."""

    async def claim_container(self, tenant: str, provider: str, container_id: str, expires_at: str) -> bool:
        """Record the container as the tenant's until ``expires_at`` (one conditional write); False, and
        nothing written, when another tenant holds it and its record has not expired."""

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        """The tenant whose container it is; None when none is recorded or the record expired."""

    async def sweep_containers(self, now: str) -> int:
        """Delete expired records (SQLite; DynamoDB's TTL does it there); returns how many."""


# ----------------------------------------------------------------------------------------------- audit


class Store(
    KeyStore,
    BudgetStore,
    UsdBudgetStore,
    SessionStore,
    ResponseStore,
    ContainerStore,
    AuditStore,
    CostStore,
    RollupStore,
    LimitStore,
    AlertStore,
    Protocol,
):
    """What a backend implements; callers depend on the aggregate they use."""

    async def init_schema(self) -> None:
        """Create tables/schema if missing (idempotent)."""

    async def aclose(self) -> None: ...
