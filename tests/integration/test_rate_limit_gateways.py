"""Rate limits across processes: four ``tollgate serve`` processes (the real CLI) on one SQLite file, and
four on one dynalite table, the way Lambda runs every invocation as a replica. 200 concurrent requests
against an RPM limit of 20, and separately a TPM limit.

What is proven (the in-flight bound): within one minute bucket, the requests admitted never exceed the RPM
limit, in flight or not (a request is counted when admitted, before its upstream call, and never given
back); for TPM, at every moment the bucket's count = the reserved estimates of the admitted requests still
in flight + the real usage of those settled, and that count never exceeds the limit (each admission is
one conditional update that fits or is refused). After the run every bucket holds exactly what its admitted
requests used, each at most the limit. Every refused request got a 429 ``rate_limit_exceeded`` with
``Retry-After`` and the x-ratelimit headers, and never reached the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.backend_dynamodb import REGION, aws_environment, dynalite_url
from tests.e2e.console_env import ADMIN_KEY, _serve_env
from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.test_audit_gateways import serve_processes
from tollgate.store.dynamodb import DynamoDBStore

pytestmark = pytest.mark.slow

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GATEWAYS, REQUESTS, RPM, TPM = 4, 200, 20, 1000
USAGE = 14  # what the fake upstream reports for every answer (11 prompt + 3 completion tokens)


@contextlib.contextmanager
def gateways(tmp_path: Path, upstream: FakeOpenAI, kind: str) -> Iterator[tuple[list[str], Any]]:
    """Four gateways on one store; yields their URLs and a function that reads the counter buckets."""
    env = _serve_env(tmp_path / "limits.db", upstream.url)  # type: ignore[attr-defined]
    env["TOLLGATE_STORE_THREADS"] = "8"
    env["TOLLGATE_DEFAULT_MAX_TOKENS"] = "50"  # an estimate of about 60 tokens per request
    table = f"tollgate-{uuid.uuid4().hex[:12]}"
    with contextlib.ExitStack() as stack:
        if kind == "dynalite":
            url = dynalite_url()
            stack.enter_context(aws_environment(tmp_path, url))
            asyncio.run(_create_table(table))
            env.update(
                TOLLGATE_STORE="dynamodb",
                TOLLGATE_TABLE=table,
                AWS_ENDPOINT_URL_DYNAMODB=url,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_REGION=REGION,
                AWS_DEFAULT_REGION=REGION,
            )
        with serve_processes(tmp_path, env, GATEWAYS) as started:
            if kind == "sqlite":
                yield [u for u, _ in started], lambda: _sqlite_buckets(tmp_path / "limits.db")
            else:
                yield [u for u, _ in started], lambda: asyncio.run(_dynamodb_buckets(table))


async def _create_table(table: str) -> None:
    store = DynamoDBStore(table, region=REGION)
    try:
        await store.init_schema()
    finally:
        await store.aclose()


def _sqlite_buckets(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {str(b): int(c) for b, c in conn.execute("SELECT bucket, count FROM rate_counters")}


async def _dynamodb_buckets(table: str) -> dict[str, int]:
    store = DynamoDBStore(table, region=REGION)
    try:
        scan = {
            "FilterExpression": "begins_with(PK, :rl)",
            "ExpressionAttributeValues": {":rl": {"S": "RL#"}},
        }
        found = await store._query(scan, operation="scan")
        return {item["PK"]["S"].removeprefix("RL#"): int(item["count"]["N"]) for item in found}
    finally:
        await store.aclose()


def admin(url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.request(method, f"{url}/admin{path}", headers=headers, timeout=20, **kwargs)


def limited_key(url: str, **limit: int) -> str:
    created = admin(url, "POST", "/keys", json={"tenant": "acme"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert admin(url, "PUT", f"/limits/acme/keys/{key_id}", json=limit).status_code == 200
    return str(key)


async def burst(urls: list[str], key: str) -> list[httpx.Response]:
    """200 requests at once, round-robin over the gateways."""
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        calls = [
            client.post(f"{urls[n % len(urls)]}/v1/chat/completions", json=BODY, headers=headers)
            for n in range(REQUESTS)
        ]
        return list(await asyncio.gather(*calls))


def check_refused(response: httpx.Response, kind: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    for part in ("limit", "remaining", "reset"):
        assert f"x-ratelimit-{part}-{kind}" in response.headers
    assert response.headers[f"x-ratelimit-limit-{kind}"] == str(RPM if kind == "requests" else TPM)


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_rpm_limit_holds_across_four_gateways(fake_openai: FakeOpenAI, tmp_path: Path, kind: str) -> None:
    with gateways(tmp_path, fake_openai, kind) as (urls, buckets):
        key = limited_key(urls[0], rpm=RPM)
        responses = asyncio.run(burst(urls, key))
        counted = buckets()
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    for response in refused:
        check_refused(response, "requests")
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
    rpm_buckets = {b: c for b, c in counted.items() if "#rpm#" in b}
    # one bucket (two if the burst crossed a minute): each at most the limit, together exactly the admitted
    assert 1 <= len(rpm_buckets) <= 2 and all(c <= RPM for c in rpm_buckets.values()), rpm_buckets
    assert len(admitted) == sum(rpm_buckets.values()) >= RPM
    assert len(fake_openai.requests) == len(admitted)
    assert all(r.headers["x-ratelimit-limit-requests"] == str(RPM) for r in admitted)
    print(f"\n{kind} RPM {RPM}: {len(admitted)} of {REQUESTS} admitted, buckets {rpm_buckets}")


@pytest.mark.parametrize("kind", ["sqlite", "dynalite"])
def test_tpm_limit_holds_across_four_gateways(fake_openai: FakeOpenAI, tmp_path: Path, kind: str) -> None:
    with gateways(tmp_path, fake_openai, kind) as (urls, buckets):
        key = limited_key(urls[0], tpm=TPM)
        responses = asyncio.run(burst(urls, key))
        counted = buckets()
    admitted = [r for r in responses if r.status_code == 200]
    assert 0 < len(admitted) < REQUESTS
    for response in (r for r in responses if r.status_code != 200):
        check_refused(response, "tokens")
    assert all(r.json()["usage"]["total_tokens"] == USAGE for r in admitted)
    tpm_buckets = {b: c for b, c in counted.items() if "#tpm#" in b}
    # settled: each bucket holds the real usage of the requests it admitted, never more than the limit
    assert 1 <= len(tpm_buckets) <= 2 and all(c <= TPM for c in tpm_buckets.values()), tpm_buckets
    assert sum(tpm_buckets.values()) == USAGE * len(admitted)
    assert 0 < len(admitted) < REQUESTS and len(fake_openai.requests) == len(admitted)
    print(f"\n{kind} TPM {TPM}: {len(admitted)} of {REQUESTS} admitted, buckets {tpm_buckets}")
