"""Revoking a key while its streams are in flight, with two gateway processes on one store.

Gateway A revokes (admin API); gateway B has the key in its cache (``TOLLGATE_KEY_CACHE_SECONDS``). A
refuses the key at once (401 ``key_revoked``); B accepts new requests only until its cache entry ends,
never later; the stream B was serving when the key was revoked finishes and is settled and audited. A
hoosh reservation open at the revocation cannot be reported any more (401: a revoked key must not move
money, and a report may charge any amount), so the sweep charges it its reserved tokens (README, "Keys").
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.audit_helpers import request_entries
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.integration.state_helpers import ADMIN_KEY, MESSAGES
from tests.integration.test_sweep_processes import (
    DEADLINE,
    STREAM_DELAY,
    STREAM_TEXTS,
    Processes,
    Stream,
    backend,
    created_key,
    run,
    settings_env,
)

CACHE_SECONDS = 2.0


def chat(url: str, key: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"x-api-key": key}, timeout=20)


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_a_revoked_key_stops_within_the_cache_time_and_its_stream_still_settles(
    kind: str, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = Script(texts=STREAM_TEXTS, delay=STREAM_DELAY)  # streams only: ~4.5 s each
    with backend(kind, tmp_path) as shared:
        run(shared, lambda store: store.set_capacity("acme", "default", None))  # the schema / table first
        gateways = Processes({**settings_env(fake_openai), **shared.env})
        cache = {"TOLLGATE_KEY_CACHE_SECONDS": str(CACHE_SECONDS)}
        try:
            _, revoker = gateways.start(**cache)
            _, cached = gateways.start(**cache)
            key, key_id = created_key(revoker, "acme")
            assert chat(cached, key).status_code == 200  # B caches the key now
            held = httpx.post(
                f"{revoker}/v1/tokens/reserve", json={"tokens": 70}, headers={"x-api-key": key}, timeout=20
            )
            assert held.status_code == 200, held.text
            stream = Stream(cached, key)
            thread = stream.start()
            assert stream.first_chunk.wait(DEADLINE) and stream.error is None, stream.error

            revoked = httpx.post(
                f"{revoker}/admin/keys/{key_id}/revoke",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
                timeout=10,
            )
            assert revoked.status_code == 200, revoked.text
            at = time.monotonic()
            refused = chat(revoker, key)
            assert (refused.status_code, refused.json()["error"]["code"]) == (401, "key_revoked")
            report = httpx.post(
                f"{revoker}/v1/tokens/report",
                json={"reservation_id": held.json()["reservation_id"], "actual": 10},
                headers={"x-api-key": key},
                timeout=20,
            )
            assert report.status_code == 401  # the hold stays for the sweep

            # B cached the key before ``at``, so its entry ends before at + CACHE_SECONDS: a request it
            # accepts was authenticated by then, and so was sent before then
            accepted = 0
            while True:
                sent = time.monotonic()
                if (answer := chat(cached, key)).status_code != 200:
                    break
                accepted += 1
                assert sent - at < CACHE_SECONDS, "B accepted a revoked key past its cache time"
                time.sleep(0.2)
            assert (answer.status_code, answer.json()["error"]["code"]) == (401, "key_revoked")
            thread.join(timeout=DEADLINE)
            assert stream.done and stream.error is None  # the stream in flight at the revocation finished
        finally:
            gateways.stop_all()

        entries = {e.request_id: e for e in run(shared, lambda store: request_entries(store, "acme"))}
        assert entries[stream.request_id].status == "ok" and entries[stream.request_id].completion_tokens > 0
        assert len(entries) == 2 + accepted  # the first request, the stream, what B accepted meanwhile
        pool = run(shared, lambda store: store.get_pool("acme", "default"))
        assert set(pool.reservations) == {held.json()["reservation_id"]}  # only the unreportable hoosh hold
        assert pool.used == sum(e.prompt_tokens + e.completion_tokens for e in entries.values())
