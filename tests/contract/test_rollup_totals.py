"""``RollupStore.rollup_totals`` on SQLite, moto and dynalite: the rows of a range summed per report group
in the store (SQL ``GROUP BY``; DynamoDB pages folded as they arrive), equal to summing ``list_rollups``,
so that ``/v1/costs``, ``GET /admin/costs`` and ``tollgate costs`` hold one row per group in memory, not
one per day x key x model of the whole range."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tollgate import rollups
from tollgate.audit import AuditWriter
from tollgate.store.audit_base import AuditEntry
from tollgate.store.base import Store
from tollgate.store.rollup_base import GROUP_FIELDS, Rollup, by_cell, group_row


def _entry(tenant: str) -> AuditEntry:
    return AuditEntry(
        tenant, 0, "2026-01-01T00:00:00.000000Z", "r1", "key_a", "openai", "m", "ok", 1, 1, 1, "", "", "", ""
    )


async def _fill(store: Store) -> None:
    first = date(2026, 1, 1)
    for tenant in ("acme", "beta"):
        await AuditWriter(store, None).append(_entry(tenant))  # every-tenant reads find the tenant
        for day in range(6):
            for key in ("key_a", "key_b", "key_c"):
                for model in ("m1", "m2"):
                    cell = (tenant, (first + timedelta(days=day)).isoformat(), key, "openai", model)
                    for shard_add in range(2):  # two adds per cell: shards on DynamoDB
                        await store.add_rollup(
                            Rollup(
                                *cell,
                                requests=1,
                                prompt_tokens=day + shard_add,
                                cost_micro_usd=7,
                                refused=shard_add,
                            )
                        )


def _expected(rows: list[Rollup], group_by: str | None) -> list[Rollup]:
    return sorted(by_cell(group_row(r, group_by) for r in rows).values(), key=lambda r: r.cell)


@pytest.mark.parametrize("group_by", sorted(GROUP_FIELDS, key=str))
async def test_totals_equal_the_rows_summed_per_group(store: Store, group_by: str | None) -> None:
    await _fill(store)
    for tenant, since, until in [
        (None, None, None),
        ("acme", None, None),
        ("beta", "2026-01-02", "2026-01-05"),
        (None, "2026-01-06", None),
        ("acme", "2026-02-01", None),
    ]:
        rows = await store.list_rollups(tenant, since, until)
        totals = await store.rollup_totals(tenant, since, until, group_by)
        assert totals == _expected(rows, group_by), (tenant, since, until)
        assert len(totals) <= max(1, len({group_row(r, group_by).cell for r in rows}))
    assert await store.rollup_totals(None, "2026-01-03", "2026-01-03", group_by) == []


async def test_the_cost_report_reads_the_totals(store: Store) -> None:
    await _fill(store)
    report = await rollups.cost_report(store, None, None, None, "key")
    assert [g["group"] for g in report["groups"]] == ["key_a", "key_b", "key_c"]
    assert report["requests"] == 2 * 6 * 3 * 2 * 2 and report["refused"] == 2 * 6 * 3 * 2
    assert report["total_cost_micro_usd"] == 7 * 2 * 6 * 3 * 2 * 2
    by_day = await rollups.cost_report(store, "acme", "2026-01-02", "2026-01-04T00:00:01Z", "day")
    assert [g["group"] for g in by_day["groups"]] == ["2026-01-02", "2026-01-03", "2026-01-04"]
