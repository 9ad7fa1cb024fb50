"""A store that does nothing, instantly: the gateway without the cost of its accounting path.

    python -m uvicorn --factory null_store:create_app     # with bench/ on PYTHONPATH

Every key is valid (``key_by_hash`` returns a fixed key of tenant ``bench`` with the presented hash), every
reservation fits, settles and audit appends succeed at once, and nothing is kept. ``bench/accounting.py``
compares the gateway on it with the gateway on the real SQLite store: the difference is what reserve,
settle and the audit append cost per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Litestar

from tollgate.app import create_app as tollgate_app
from tollgate.store.alert_base import Alert

try:
    from tollgate.store.audit_base import AuditEntry, AuditHead
except ImportError:  # a tree from before store/audit_base.py (``app_cpu.py --before``)
    from tollgate.store.base import AuditEntry, AuditHead  # type: ignore[attr-defined,no-redef]
from tollgate.store.base import (
    NOBODY,
    ApiKey,
    BeforeCharge,
    Holder,
    Pool,
    Reservation,
    StoredResponse,
)
from tollgate.store.budget_records import BudgetRule, UsdCounter, UsdReservation
from tollgate.store.limits_base import Counted, RateLimit
from tollgate.store.rollup_base import Rollup

if TYPE_CHECKING:
    from tollgate.store.base import Store

TENANT = "bench"
CREATED_AT = "2026-01-01T00:00:00.000000Z"


def _pool(tenant: str, pool: str) -> Pool:
    return Pool(tenant, pool, capacity=None, used=0, reserved=0)


class NullStore:
    """Implements ``tollgate.store.base.Store``; every call returns at once and keeps nothing."""

    async def init_schema(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    # keys
    async def create_key(self, key: ApiKey) -> None:
        return None

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return ApiKey(key_id="key_null", key_hash=key_hash, tenant=TENANT, created_at=CREATED_AT)

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return []

    async def revoke_key(self, key_id: str, at: str) -> ApiKey | None:
        return None

    async def any_keys(self) -> bool:
        return True

    async def rotate_key(self, key_id: str, new_hash: str, at: str, old_until: str) -> ApiKey | None:
        return None

    # budgets
    async def set_capacity(self, tenant: str, pool: str, tokens: int | None) -> Pool:
        return _pool(tenant, pool)

    async def create_pool(self, tenant: str, pool: str) -> bool:
        return False

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
        return _pool(tenant, pool)

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
        return _pool(tenant, pool)

    async def settle_anonymous(self, tenant: str, pool: str, reserved: int, actual: int) -> Pool | None:
        return _pool(tenant, pool)

    async def get_pool(self, tenant: str, pool: str) -> Pool | None:
        return _pool(tenant, pool)  # every pool exists

    async def list_pools(self, tenant: str | None = None) -> list[Pool]:
        return []

    async def sweep_reservations(
        self, older_than: str, at: str, before_charge: BeforeCharge | None = None
    ) -> list[Reservation]:
        return []

    # sessions
    async def load_session(self, tenant: str, session_id: str) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    async def save_session(
        self, tenant: str, session_id: str, messages: list[dict[str, Any]], version: int, expires_at: str
    ) -> bool:
        return True

    async def delete_session(self, tenant: str, session_id: str) -> bool:
        return False

    async def sweep_sessions(self, now: str) -> int:
        return 0

    # audit and costs
    async def audit_head(self, tenant: str, *, segment: str = "") -> AuditHead | None:
        return None

    async def put_audit_entry(self, entry: AuditEntry) -> bool:
        return True

    async def advance_audit_head(
        self, tenant: str, head: AuditHead, previous_seq: int, *, segment: str = ""
    ) -> bool:
        return True

    async def append_audit_link(self, link: AuditEntry, previous_seq: int) -> tuple[bool, bool]:
        return True, True

    async def get_audit_entry(self, tenant: str, seq: int, *, segment: str = "") -> AuditEntry | None:
        return None

    async def list_audit(
        self, tenant: str, after_seq: int = 0, limit: int = 1000, *, segment: str = ""
    ) -> list[AuditEntry]:
        return []

    async def audit_heads(self, tenant: str) -> dict[str, AuditHead]:
        return {}

    async def scan_audit(
        self, tenant: str, after: tuple[str, int] | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        return []

    async def recent_audit(
        self, tenant: str, before: tuple[str, str, int] | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        return []

    async def audit_tenants(self) -> list[str]:
        return []

    async def list_costs(
        self, tenant: str | None, since: str | None = None, until: str | None = None
    ) -> list[AuditEntry]:
        return []

    async def add_rollup(self, change: Rollup) -> None:
        return None

    async def list_rollups(
        self, tenant: str | None, since_day: str | None = None, until_day: str | None = None
    ) -> list[Rollup]:
        return []

    # rate limits: none (no counter is ever written)
    async def set_limit(self, limit: RateLimit) -> None:
        return None

    async def clear_limit(self, tenant: str, key_id: str | None) -> bool:
        return False

    async def tenant_limits(self, tenant: str) -> list[RateLimit]:
        return []

    async def list_limits(self, tenant: str | None = None) -> list[RateLimit]:
        return []

    async def count_in_bucket(self, bucket: str, amount: int, limit: int, expires_epoch: int) -> Counted:
        return Counted(True, amount)

    async def read_bucket(self, bucket: str) -> int:
        return 0

    async def add_to_bucket(self, bucket: str, amount: int, expires_epoch: int) -> int:
        return amount

    # stored responses: none kept
    async def put_response(self, record: StoredResponse) -> None:
        return None

    async def get_response(self, tenant: str, response_id: str) -> StoredResponse | None:
        return None

    async def delete_response(self, tenant: str, response_id: str) -> bool:
        return False

    async def sweep_responses(self, now: str) -> int:
        return 0

    # containers: none recorded (a request naming one is refused)
    async def claim_container(self, tenant: str, provider: str, container_id: str, expires_at: str) -> bool:
        return True

    async def container_owner(self, provider: str, container_id: str) -> str | None:
        return None

    async def sweep_containers(self, now: str) -> int:
        return 0

    # USD budgets: none (no rule, so no USD reservation is ever made)
    async def put_budget_rule(self, rule: BudgetRule) -> None:
        return None

    async def get_budget_rules(self, tenant: str, budget_ids: list[str]) -> list[BudgetRule]:
        return []

    async def list_budget_rules(self, tenant: str | None = None) -> list[BudgetRule]:
        return []

    async def reserve_usd(
        self, tenant: str, budget: str, period_key: str, reservation: tuple[str, int, str], limit: int
    ) -> UsdCounter:
        return UsdCounter(tenant, budget, period_key, reserved=reservation[1])

    async def settle_usd(
        self,
        tenant: str,
        budget: str,
        period_key: str,
        reservation_id: str,
        actual: int,
        *,
        reserved: int | None = None,
    ) -> UsdCounter | None:
        return None

    async def get_usd_counter(self, tenant: str, budget: str, period_key: str) -> UsdCounter | None:
        return None

    async def sweep_usd_reservations(self, older_than: str, at: str) -> list[UsdReservation]:
        return []

    # alerts: none recorded
    async def record_alert(self, alert: Alert) -> bool:
        return False

    async def get_alert(self, tenant: str, alert_id: str) -> Alert | None:
        return None

    async def list_alerts(self, tenant: str) -> list[Alert]:
        return []

    async def pending_alerts(self, limit: int = 100) -> list[Alert]:
        return []

    async def sweep_alerts(self, now: str) -> int:
        return 0

    async def claim_alert(
        self, tenant: str, alert_id: str, attempts: int, claimed_at: str, stale_before: str
    ) -> Alert | None:
        return None

    async def finish_alert(
        self, tenant: str, alert_id: str, attempts: int, state: str, delivered: tuple[str, ...], error: str
    ) -> bool:
        return False


if TYPE_CHECKING:
    _is_a_store: Store = NullStore()  # mypy checks that NullStore implements the whole protocol


def create_app() -> Litestar:
    """The chat entry's app (settings from the environment) on a ``NullStore``."""
    return tollgate_app(store=NullStore())
