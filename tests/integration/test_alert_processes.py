"""Three ``tollgate serve`` processes (the real CLI) on one SQLite file, one pool and one real webhook
receiver: 60 concurrent requests push the pool past 50/80/100% and the receiver gets exactly one signed call
per threshold. Each process has its own in-memory AlertWatch: only the store's conditional write dedups."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.e2e.console_env import ADMIN_KEY, _serve_env
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_audit_gateways import serve_processes
from tollgate.store.alert_base import DELIVERED
from tollgate.store.sqlite import SQLiteStore

SECRET = "whsec-processes"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def gateways(tmp_path: Path, upstream: FakeOpenAI, hook: str, count: int) -> Iterator[list[str]]:
    env = _serve_env(tmp_path / "alerts.db", upstream.url)  # type: ignore[attr-defined]
    env |= {"TOLLGATE_ALERT_WEBHOOK_URL": hook, "TOLLGATE_ALERT_WEBHOOK_SECRET": SECRET}
    env["TOLLGATE_DEFAULT_MAX_TOKENS"] = "50"  # a reservation of about 60 tokens: many fit in the pool
    with serve_processes(tmp_path, env, count) as started:
        yield [url for url, _ in started]


def admin(url: str, method: str, path: str, body: dict[str, object]) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.request(method, f"{url}/admin{path}", json=body, headers=headers, timeout=10)


async def burst(urls: list[str], key: str, count: int) -> list[int]:
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as client:
        responses = await asyncio.gather(
            *(
                client.post(f"{urls[n % len(urls)]}/v1/chat/completions", json=BODY, headers=headers)
                for n in range(count)
            )
        )
    return [r.status_code for r in responses]


async def stored_states(db: Path) -> list[tuple[int, str]]:
    store = SQLiteStore(str(db))
    try:
        return [(a.threshold, a.state) for a in await store.list_alerts("acme")]
    finally:
        await store.aclose()


def test_three_serve_processes_fire_each_threshold_once(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    with WebhookReceiver() as receiver, gateways(tmp_path, fake_openai, receiver.url, 3) as urls:
        budget = admin(urls[0], "PUT", "/budgets/acme/team", {"tokens": 400, "alert_at": [50, 80, 100]})
        assert budget.status_code == 200, budget.text
        created = admin(urls[0], "POST", "/keys", {"tenant": "acme", "pool": "team"})
        assert created.status_code == 201, created.text
        codes = asyncio.run(burst(urls, created.json()["key"], 60))  # 60 x 14 settled tokens: past 400
        assert set(codes) == {200, 429}
        deadline = time.monotonic() + 30  # background deliveries finishing (not a timing assertion)
        while asyncio.run(stored_states(tmp_path / "alerts.db")) != [(t, DELIVERED) for t in (50, 80, 100)]:
            assert time.monotonic() < deadline, "the three alerts were not delivered"
            time.sleep(0.1)
        assert sorted(c.json["threshold"] for c in receiver.calls) == [50, 80, 100]
        for call in receiver.calls:
            signature = "sha256=" + hmac.new(SECRET.encode(), call.body, hashlib.sha256).hexdigest()
            assert call.headers["x-tollgate-signature"] == signature
