"""Rate limits through the app over a real socket (SQLite store, fake OpenAI upstream, an injected clock):
RPM and TPM per key and per tenant, the 429 and its headers on every shape, headers on buffered and
streamed answers, and the admin API's checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clock_helpers import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import MESSAGES, Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore

START = datetime(2026, 3, 1, 12, 0, 15, tzinfo=UTC)  # 45 s before the minute ends
HEADERS = ("limit", "remaining", "reset")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def gw(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path, clock: ManualClock
) -> Gateway:
    settings = gateway_settings(fake_openai)
    store = SQLiteStore(str(tmp_path / "state.db"))
    return Gateway(start_gateway(settings, include_admin=True, store=store, clock=clock), fake_openai)


def set_limit(gw: Gateway, tenant: str, key_id: str | None = None, **body: Any) -> httpx.Response:
    path = f"/limits/{tenant}" + (f"/keys/{key_id}" if key_id else "")
    return gw.admin("PUT", path, json=body)


def new_key(gw: Gateway, tenant: str) -> tuple[str, str]:
    response = gw.admin("POST", "/keys", json={"tenant": tenant})
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["key_id"]


def window(response: httpx.Response, kind: str) -> tuple[str | None, ...]:
    return tuple(response.headers.get(f"x-ratelimit-{h}-{kind}") for h in HEADERS)


def test_rpm_per_key_admits_the_limit_then_429_until_the_next_minute(gw: Gateway, clock: ManualClock) -> None:
    key, key_id = new_key(gw, "acme")
    other, _ = new_key(gw, "acme")
    assert set_limit(gw, "acme", key_id, rpm=3).status_code == 200
    answers = [gw.chat(key) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [window(r, "requests") for r in answers] == [("3", str(n), "45s") for n in (2, 1, 0)]
    assert all(window(r, "tokens") == (None, None, None) for r in answers)  # no TPM limit: no trio
    refused = gw.chat(key)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert f"3 requests per minute reached for key {key_id}" in error["message"]
    assert refused.headers["retry-after"] == "45"
    assert window(refused, "requests") == ("3", "0", "45s")
    assert len(gw.upstream.requests) == 3  # the refused request never reached the upstream
    unlimited = gw.chat(other)  # the tenant's other key has no limit: no headers at all
    assert unlimited.status_code == 200 and "x-ratelimit-limit-requests" not in unlimited.headers
    clock.now = START + timedelta(seconds=50)  # the next minute's bucket starts clean
    again = gw.chat(key)
    assert again.status_code == 200 and window(again, "requests") == ("3", "2", "55s")


def test_tenant_rpm_is_shared_by_its_keys_and_the_tighter_limit_is_reported(gw: Gateway) -> None:
    first, first_id = new_key(gw, "acme")
    second, _ = new_key(gw, "acme")
    assert set_limit(gw, "acme", rpm=4).status_code == 200
    assert set_limit(gw, "acme", first_id, rpm=10).status_code == 200
    statuses = [gw.chat(k).status_code for k in (first, second, first, second, first)]
    assert statuses == [200, 200, 200, 200, 429]
    refused = gw.chat(second)
    assert refused.status_code == 429 and "tenant acme" in refused.json()["error"]["message"]
    assert window(refused, "requests")[:2] == ("4", "0")


def test_streamed_answer_carries_the_headers_and_anthropic_shape_on_messages(gw: Gateway) -> None:
    key, key_id = new_key(gw, "acme")
    assert set_limit(gw, "acme", key_id, rpm=2, tpm=100_000).status_code == 200
    headers = {"authorization": f"Bearer {key}"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, headers=headers, timeout=20) as r:
        assert r.status_code == 200
        assert window(r, "requests") == ("2", "1", "45s")
        limit, remaining, reset = window(r, "tokens")
        assert limit == "100000" and reset == "45s" and 0 < 100_000 - int(remaining or 0) < 1000
        assert b"[DONE]" in b"".join(r.iter_bytes())
    messages = {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MESSAGES}
    assert httpx.post(f"{gw.url}/v1/messages", json=messages, headers=headers, timeout=20).status_code == 200
    refused = httpx.post(f"{gw.url}/v1/messages", json=messages, headers=headers, timeout=20)
    assert refused.status_code == 429
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["retry-after"] == "45" and window(refused, "requests") == ("2", "0", "45s")


def test_tpm_admits_on_the_estimate_and_corrects_on_settle(gw: Gateway, clock: ManualClock) -> None:
    key, key_id = new_key(gw, "acme")
    assert set_limit(gw, "acme", key_id, tpm=100_000).status_code == 200
    probe = gw.chat(key)
    estimate = 100_000 - int(probe.headers["x-ratelimit-remaining-tokens"])
    actual = probe.json()["usage"]["total_tokens"]
    assert 0 < actual < estimate  # the estimate is an upper bound (max_tokens 50)
    clock.now = START + timedelta(minutes=1)
    assert set_limit(gw, "acme", key_id, tpm=2 * estimate - 1).status_code == 200
    assert gw.chat(key).status_code == 200
    # only because the first one was corrected to its real usage does the second fit
    second = gw.chat(key)
    assert second.status_code == 200
    assert second.headers["x-ratelimit-remaining-tokens"] == str(2 * estimate - 1 - actual - estimate)
    clock.now = START + timedelta(minutes=2)
    assert set_limit(gw, "acme", key_id, tpm=estimate - 1).status_code == 200
    too_big = gw.chat(key)
    assert too_big.status_code == 429 and too_big.json()["error"]["code"] == "rate_limit_exceeded"
    assert (
        f"may need {estimate} tokens, more than the {estimate - 1} tokens per minute"
        in (too_big.json()["error"]["message"])
    )
    entries = gw.get(key, "/v1/audit").json()["entries"]
    statuses = [e["status"] for e in entries if e["status"] != "segment_opened"]
    assert statuses == ["ok", "ok", "ok", "rate_limit_exceeded"]  # a TPM refusal is audited, no tokens
    assert entries[-1]["prompt_tokens"] == entries[-1]["completion_tokens"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"rpm": -1},
        {"rpm": 0},
        {"tpm": "20"},
        {"rpm": 1.5},
        {"rpm": True},
        {},
        {"rpm": None},
        {"rpm": 5, "x": 1},
    ],
)
def test_admin_refuses_bad_limits_and_writes_nothing(gw: Gateway, body: dict[str, Any]) -> None:
    new_key(gw, "acme")
    response = set_limit(gw, "acme", **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert gw.admin("GET", "/limits").json() == {"limits": []}


def test_admin_unknown_tenant_or_key_is_404_and_list_and_clear_work(gw: Gateway) -> None:
    _, key_id = new_key(gw, "acme")
    _, other_id = new_key(gw, "other")
    assert set_limit(gw, "nobody", rpm=5).status_code == 404
    assert set_limit(gw, "acme", "key_0000000000000000", rpm=5).status_code == 404
    assert set_limit(gw, "acme", other_id, rpm=5).status_code == 404  # another tenant's key
    assert set_limit(gw, "acme", "../x", rpm=5).status_code in (400, 404)
    assert gw.admin("GET", "/limits").json() == {"limits": []}
    assert set_limit(gw, "acme", rpm=5, tpm=1000).json() == {
        "tenant": "acme",
        "key_id": None,
        "rpm": 5,
        "tpm": 1000,
    }
    assert set_limit(gw, "acme", key_id, tpm=10).status_code == 200
    listed = gw.admin("GET", "/limits", params={"tenant": "acme"}).json()["limits"]
    assert listed == [
        {"tenant": "acme", "key_id": None, "rpm": 5, "tpm": 1000},
        {"tenant": "acme", "key_id": key_id, "rpm": None, "tpm": 10},
    ]
    assert gw.admin("DELETE", f"/limits/acme/keys/{key_id}").status_code == 200
    assert gw.admin("DELETE", f"/limits/acme/keys/{key_id}").status_code == 404
    assert gw.admin("DELETE", "/limits/acme").status_code == 200
    assert gw.admin("GET", "/limits").json() == {"limits": []}


def test_the_caller_reads_its_own_limits_and_use_without_spending_them(gw: Gateway) -> None:
    key, key_id = new_key(gw, "acme")
    other, _ = new_key(gw, "other")
    assert gw.get(key, "/v1/limits").json() == {"limits": []}
    assert set_limit(gw, "acme", rpm=50).status_code == 200
    assert set_limit(gw, "acme", key_id, rpm=5, tpm=100_000).status_code == 200
    assert gw.chat(key).status_code == 200
    reads = [gw.get(key, "/v1/limits") for _ in range(3)]
    assert all("x-ratelimit-limit-requests" not in r.headers for r in reads)  # reading is not metered
    tenant, own = reads[-1].json()["limits"]
    resets_at = "2026-03-01T12:01:00.000000Z"
    assert tenant == {
        "scope": "tenant",
        "key_id": None,
        "requests": {"limit": 50, "used": 1, "remaining": 49, "resets_at": resets_at},
    }
    assert own["scope"] == "key" and own["key_id"] == key_id
    assert own["requests"] == {"limit": 5, "used": 1, "remaining": 4, "resets_at": resets_at}
    assert own["tokens"]["limit"] == 100_000 and 0 < own["tokens"]["used"] < 100
    assert gw.get(other, "/v1/limits").json() == {"limits": []}  # another tenant sees none of them


METERED = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "loop_mode": "basic"}),
    ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 20, "messages": MESSAGES}),
    ("/v1/messages/count_tokens", {"model": "gpt-4o-mini", "messages": MESSAGES}),
    ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "hello"}),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hello"}),
    ("/v1/responses/compact", {"model": "gpt-4o-mini", "input": "hello"}),
    ("/v1/tokens/check", {"tokens": 10}),
]


def test_every_model_endpoint_is_metered_and_refuses_in_its_own_shape(gw: Gateway) -> None:
    key, key_id = new_key(gw, "acme")
    assert set_limit(gw, "acme", key_id, rpm=len(METERED)).status_code == 200
    headers = {"authorization": f"Bearer {key}"}
    remaining = []
    for path, body in METERED:
        response = httpx.post(f"{gw.url}{path}", json=body, headers=headers, timeout=20)
        assert response.status_code == 200, (path, response.text)
        remaining.append(int(response.headers["x-ratelimit-remaining-requests"]))
    assert remaining == list(range(len(METERED) - 1, -1, -1))
    assert gw.get(key, "/v1/models").status_code == 200  # reading is not counted
    refused = httpx.post(
        f"{gw.url}/v1/responses", json={"model": "gpt-4o-mini", "input": "x"}, headers=headers
    )
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    refused = httpx.post(f"{gw.url}/v1/messages/count_tokens", json=METERED[3][1], headers=headers)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_reading_the_audit_log_is_not_metered(gw: Gateway) -> None:
    """Its whole-log verification is shared and bounded in age instead (TOLLGATE_AUDIT_VERIFY_SECONDS)."""
    key, key_id = new_key(gw, "acme")
    assert set_limit(gw, "acme", key_id, rpm=1).status_code == 200
    reads = [gw.get(key, "/v1/audit") for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 200]
    assert all("x-ratelimit-limit-requests" not in r.headers for r in reads)
    assert gw.chat(key).status_code == 200  # the minute's one request is still there


def test_a_change_applies_at_once_in_the_process_that_made_it_despite_the_cache(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path, clock: ManualClock
) -> None:
    settings = gateway_settings(fake_openai, key_cache_seconds=300)
    store = SQLiteStore(str(tmp_path / "cached.db"))
    gw = Gateway(start_gateway(settings, include_admin=True, store=store, clock=clock), fake_openai)
    key, key_id = new_key(gw, "acme")
    assert "x-ratelimit-limit-requests" not in gw.chat(key).headers  # "no limits" is cached now
    assert set_limit(gw, "acme", key_id, rpm=7).status_code == 200
    assert gw.chat(key).headers["x-ratelimit-limit-requests"] == "7"
    assert gw.admin("DELETE", f"/limits/acme/keys/{key_id}").status_code == 200
    assert "x-ratelimit-limit-requests" not in gw.chat(key).headers


def test_a_hoosh_report_corrects_the_tpm_count_of_its_reserve(gw: Gateway, clock: ManualClock) -> None:
    """``/v1/tokens/reserve`` counts its tokens against TPM; ``/v1/tokens/report`` corrects that count to
    the tokens used while the reserve's minute lasts (the same bucket), and writes nothing after it."""
    key, key_id = new_key(gw, "acme")
    assert gw.admin("PUT", "/budgets/acme/default", json={"tokens": 1_000_000}).status_code == 200
    assert set_limit(gw, "acme", key_id, tpm=1000).status_code == 200
    auth = {"Authorization": f"Bearer {key}"}

    def reserve(tokens: int) -> httpx.Response:
        return httpx.post(f"{gw.url}/v1/tokens/reserve", headers=auth, json={"tokens": tokens})

    def report(reservation_id: str, actual: int) -> httpx.Response:
        body = {"reservation_id": reservation_id, "actual": actual}
        return httpx.post(f"{gw.url}/v1/tokens/report", headers=auth, json=body)

    first = reserve(800)
    assert first.status_code == 200 and window(first, "tokens")[1] == "200"
    assert reserve(300).status_code == 429  # 800 counted: 300 more do not fit
    assert report(first.json()["reservation_id"], 100).status_code == 200  # used 100 of the 800
    second = reserve(800)  # fits only because the report gave 700 back: 100 + 800
    assert second.status_code == 200 and window(second, "tokens")[1] == "100"
    clock.now = START + timedelta(seconds=50)  # the next minute: the old bucket is closed
    third = reserve(900)
    assert third.status_code == 200 and window(third, "tokens")[1] == "100"
    assert report(second.json()["reservation_id"], 0).status_code == 200  # last minute's: nothing to correct
    assert reserve(200).status_code == 429  # the 900 of this minute still count in full


class TickingClock(ManualClock):
    """A minute passes at every read: any two reads of one request land in different minutes."""

    def __call__(self) -> datetime:
        now = self.now
        self.advance(60)
        return now


def test_a_hoosh_reserve_counts_tpm_in_the_minute_it_records(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """The reserve reads the time once: the TPM bucket its tokens are counted in is the minute of the
    hold's ``at``, which is the bucket a later report corrects."""
    path = tmp_path / "state.db"
    gw = Gateway(
        start_gateway(
            gateway_settings(fake_openai),
            include_admin=True,
            store=SQLiteStore(str(path)),
            clock=TickingClock(START),
        ),
        fake_openai,
    )
    key, key_id = new_key(gw, "acme")
    assert gw.admin("PUT", "/budgets/acme/default", json={"tokens": 1_000_000}).status_code == 200
    assert set_limit(gw, "acme", key_id, tpm=1000).status_code == 200
    reserved = httpx.post(
        f"{gw.url}/v1/tokens/reserve", headers={"Authorization": f"Bearer {key}"}, json={"tokens": 800}
    )
    assert reserved.status_code == 200, reserved.text
    with sqlite3.connect(path) as conn:
        [(held_at,)] = conn.execute("SELECT at FROM reservations").fetchall()
        counted = conn.execute("SELECT bucket FROM rate_counters WHERE count = 800").fetchall()
    minute = int(datetime.fromisoformat(held_at.replace("Z", "+00:00")).timestamp() // 60)
    assert [bucket.rsplit("#", 1)[1] for (bucket,) in counted] == [str(minute)]


class BucketsDown(SQLiteStore):
    async def add_to_bucket(self, bucket: str, amount: int, expires_epoch: int) -> int:
        raise RuntimeError("rate counters unavailable")


def test_a_report_whose_tpm_correction_fails_still_records_the_usage(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path, clock: ManualClock
) -> None:
    """The usage is written first; a rate-limit correction that fails is logged, not a 500."""
    store = BucketsDown(str(tmp_path / "state.db"))
    gw = Gateway(
        start_gateway(gateway_settings(fake_openai), include_admin=True, store=store, clock=clock),
        fake_openai,
    )
    key, key_id = new_key(gw, "acme")
    assert gw.admin("PUT", "/budgets/acme/default", json={"tokens": 1_000_000}).status_code == 200
    assert set_limit(gw, "acme", key_id, tpm=1000).status_code == 200
    auth = {"Authorization": f"Bearer {key}"}
    reserved = httpx.post(f"{gw.url}/v1/tokens/reserve", headers=auth, json={"tokens": 800})
    assert reserved.status_code == 200, reserved.text
    body = {"reservation_id": reserved.json()["reservation_id"], "actual": 100}
    report = httpx.post(f"{gw.url}/v1/tokens/report", headers=auth, json=body)
    assert report.status_code == 200, report.text
    assert report.json()["used"] == 100
