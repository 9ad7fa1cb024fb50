"""The pure parts of the cost rollups: what an entry adds, whole-day ranges, the summary's shape."""

from __future__ import annotations

from dataclasses import replace

from tollgate import rollups
from tollgate.accounting import summarize_costs
from tollgate.store.audit_base import ABANDONED, AuditEntry

ENTRY = AuditEntry(
    "acme", 1, "2026-11-01T10:00:00.000000Z", "r1", "k1", "openai", "gpt-4o-mini", "ok", 10, 5, 7,
    "a" * 64, "b" * 64, "0" * 64, "c" * 64, segment="w0123456789abcdef",
)  # fmt: skip


def test_what_an_entry_adds() -> None:
    served = rollups.change_of(ENTRY)
    assert served.cell == ("acme", "2026-11-01", "k1", "openai", "gpt-4o-mini")
    assert served.counts() == dict(
        requests=1, refused=0, prompt_tokens=10, completion_tokens=5, cost_micro_usd=7, unpriced_requests=0,
        cached_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0, reasoning_tokens=0,
    )  # fmt: skip
    unpriced = rollups.change_of(replace(ENTRY, cost_micro_usd=None))
    assert (unpriced.cost_micro_usd, unpriced.unpriced_requests) == (0, 1)
    refused = rollups.change_of(
        replace(ENTRY, status="budget_exceeded", prompt_tokens=0, completion_tokens=0)
    )
    assert refused.counts() == dict.fromkeys(refused.counts(), 0) | {"refused": 1}
    assert served.plus(served.negated()).is_zero()


def test_an_entry_adds_its_cached_and_reasoning_parts() -> None:
    """The parts an entry's ``details`` holds are counted; other details (deployment, attempts) are not."""
    details: dict[str, str | int] = {
        "cached_tokens": 6, "cache_write_tokens": 3, "cache_write_1h_tokens": 2, "reasoning_tokens": 4,
        "deployment": "east", "attempts": 2,
    }  # fmt: skip
    change = rollups.change_of(replace(ENTRY, details=details))
    assert (change.cached_tokens, change.cache_write_tokens) == (6, 3)
    assert (change.cache_write_1h_tokens, change.reasoning_tokens) == (2, 4)
    summary = rollups.summarize([change, change], None)
    assert (summary["cached_tokens"], summary["cache_write_tokens"], summary["reasoning_tokens"]) == (
        12,
        6,
        8,
    )
    assert summary["groups"][0]["cache_write_1h_tokens"] == 4


def test_rows_from_before_the_token_parts_read_them_as_zero() -> None:
    old = rollups.Rollup.of(("acme", "2026-11-01", "k1", "openai", "m"), [1, 0, 10, 5, 7, 0])
    assert old.counts()["cached_tokens"] == old.counts()["reasoning_tokens"] == 0


def test_ranges_are_whole_utc_days() -> None:
    assert rollups.day_range(None, None) == (None, None)
    assert rollups.day_range("2026-11-01T13:00:00.000000Z", None) == ("2026-11-01", None)
    assert rollups.day_range(None, "2026-11-03T00:00:00.000000Z") == (None, "2026-11-03")
    assert rollups.day_range(None, "2026-11-03T00:00:00.000001Z") == (None, "2026-11-04")
    assert rollups.day_range(None, "2026-12-31T23:00:00.000000Z") == (None, "2027-01-01")
    assert rollups.day_range(None, "9999-12-31T23:59:59.000000Z") == (None, "9999-12-32")  # no overflow


def test_the_summary_matches_the_entries_summary() -> None:
    entries = [
        ENTRY,
        replace(ENTRY, request_id="r2", at="2026-11-02T01:00:00.000000Z", key_id="k2"),
        replace(ENTRY, request_id="r7", details={"cached_tokens": 3, "reasoning_tokens": 2, "attempts": 2}),
        replace(ENTRY, request_id="r3", model="gpt-4o", cost_micro_usd=None),
        replace(ENTRY, request_id="r4", status="upstream_error", prompt_tokens=0, completion_tokens=0),
        replace(ENTRY, request_id="r5", status=ABANDONED, prompt_tokens=0, completion_tokens=300),
        replace(ENTRY, request_id="r5", status="ok"),  # settled after all: the estimate is dropped
        replace(ENTRY, request_id="r6", status=ABANDONED, completion_tokens=50),
        replace(ENTRY, request_id="r6", status=ABANDONED, completion_tokens=50),  # audited twice, once
        replace(ENTRY, request_id="w1", status="segment_opened", segment="registry"),  # never a request
    ]
    rows = rollups.recompute(entries).values()
    for group_by in (None, "model", "day", "key", "tenant"):
        expected = summarize_costs([e for e in entries if e.status != "segment_opened"], group_by)
        assert rollups.summarize(rows, group_by) == expected, group_by
