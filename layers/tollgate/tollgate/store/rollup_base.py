"""Cost rollups: pre-aggregated counters per tenant x UTC day x key x provider/model.

One counter row per (tenant, day, key_id, provider, model) holds what the audit entries of those requests
add up to. Both rollups the cost reports need (tenant x day x model, tenant x day x key) are sums of these
rows, so each request adds to exactly one row with one atomic update (DynamoDB ``ADD``, an SQLite upsert),
never a read-modify-write. Reading a range is O(days x keys x models), never O(requests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Protocol

COUNTERS = (
    "requests",
    "refused",
    "prompt_tokens",
    "completion_tokens",
    "cost_micro_usd",
    "unpriced_requests",
    # the token parts priced at their own rates (an entry's ``details``); rows written before they
    # existed read them as 0
    "cached_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
)
TOKEN_PARTS = ("cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class Rollup:
    """One counter row, or a change to add to it (counters may be negative in a change)."""

    tenant: str
    day: str  # YYYY-MM-DD (UTC), the day of the entries' ``at``
    key_id: str
    provider: str
    model: str
    requests: int = 0  # requests served (at least in part)
    refused: int = 0  # audited requests not served (an error status and no tokens)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micro_usd: int = 0  # unpriced requests add 0 here and 1 to unpriced_requests
    unpriced_requests: int = 0
    cached_tokens: int = 0  # prompt tokens read from the cache
    cache_write_tokens: int = 0  # prompt tokens written to it (the 1-hour ones included)
    cache_write_1h_tokens: int = 0  # of those, the ones written with a 1-hour TTL
    reasoning_tokens: int = 0  # completion tokens spent reasoning

    @classmethod
    def of(cls, cell: Sequence[str], counts: Sequence[int]) -> Rollup:
        """A row from its cell and its counters in ``COUNTERS`` order (missing trailing ones: 0)."""
        tenant, day, key_id, provider, model = (str(c) for c in cell)
        return cls(
            tenant,
            day,
            key_id,
            provider,
            model,
            **{n: int(c) for n, c in zip(COUNTERS, counts, strict=False)},
        )

    @property
    def cell(self) -> tuple[str, str, str, str, str]:
        return (self.tenant, self.day, self.key_id, self.provider, self.model)

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in COUNTERS}

    def plus(self, other: Rollup) -> Rollup:
        return replace(self, **{name: getattr(self, name) + getattr(other, name) for name in COUNTERS})

    def negated(self) -> Rollup:
        return replace(self, **{name: -getattr(self, name) for name in COUNTERS})

    def is_zero(self) -> bool:
        return not any(getattr(self, name) for name in COUNTERS)


assert {f.name for f in fields(Rollup)} >= set(COUNTERS)


def by_cell(changes: Iterable[Rollup]) -> dict[tuple[str, str, str, str, str], Rollup]:
    """One row per cell: the sum of the changes to it."""
    rows: dict[tuple[str, str, str, str, str], Rollup] = {}
    for change in changes:
        have = rows.get(change.cell)
        rows[change.cell] = change if have is None else have.plus(change)
    return rows


# the cell fields a report's group_by keeps (the others are summed over, and read "")
GROUP_FIELDS: dict[str | None, tuple[str, ...]] = {
    None: (),
    "model": ("provider", "model"),
    "day": ("day",),
    "key": ("key_id",),
    "tenant": ("tenant",),
}
CELL_FIELDS = ("tenant", "day", "key_id", "provider", "model")


def group_row(row: Rollup, group_by: str | None) -> Rollup:
    """``row`` with the cell fields ``group_by`` does not keep blanked: rows of one group share a cell."""
    keep = GROUP_FIELDS[group_by]
    cell = [value if name in keep else "" for name, value in zip(CELL_FIELDS, row.cell, strict=True)]
    return Rollup.of(cell, list(row.counts().values()))


class RollupStore(Protocol):
    async def add_rollup(self, change: Rollup) -> None:
        """Add ``change``'s counters to its row (created at zero when missing): one atomic update."""

    async def list_rollups(
        self, tenant: str | None, since_day: str | None = None, until_day: str | None = None
    ) -> list[Rollup]:
        """The rows with since_day <= day < until_day (YYYY-MM-DD), one tenant's or every tenant's,
        sorted by (tenant, day, key_id, provider, model)."""

    async def rollup_totals(
        self, tenant: str | None, since_day: str | None, until_day: str | None, group_by: str | None
    ) -> list[Rollup]:
        """The same rows summed per ``group_by`` group (``GROUP_FIELDS``; the other cell fields ""): one
        row per group, never every row of the range in memory at once."""
