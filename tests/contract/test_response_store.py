"""The ``ResponseStore`` contract (stored Responses API answers), on SQLite, moto and dynalite."""

from __future__ import annotations

from typing import Any

from tollgate import timeutil
from tollgate.store.base import Store, StoredResponse

BODY = {"response": {"id": "resp_1", "output": [{"type": "message"}], "usage": {"input_tokens": 3}}, "n": 1.5}


def record(
    tenant: str, response_id: str, ttl: int = 3600, body: dict[str, Any] | None = None
) -> StoredResponse:
    return StoredResponse(tenant, response_id, body or BODY, timeutil.now_str(), timeutil.after(ttl))


async def test_put_get_delete_round_trip(store: Store) -> None:
    assert await store.get_response("acme", "resp_1") is None
    await store.put_response(record("acme", "resp_1"))
    got = await store.get_response("acme", "resp_1")
    assert got is not None
    assert (got.tenant, got.response_id, got.body) == ("acme", "resp_1", BODY)
    assert await store.delete_response("acme", "resp_1") is True
    assert await store.delete_response("acme", "resp_1") is False
    assert await store.get_response("acme", "resp_1") is None


async def test_responses_are_per_tenant(store: Store) -> None:
    await store.put_response(record("acme", "resp_same"))
    assert await store.get_response("beta", "resp_same") is None
    assert await store.delete_response("beta", "resp_same") is False
    await store.put_response(record("beta", "resp_same", body={"other": True}))
    acme, beta = await store.get_response("acme", "resp_same"), await store.get_response("beta", "resp_same")
    assert acme is not None and acme.body == BODY
    assert beta is not None and beta.body == {"other": True}


async def test_put_replaces(store: Store) -> None:
    await store.put_response(record("acme", "resp_2"))
    await store.put_response(record("acme", "resp_2", body={"v": 2}))
    got = await store.get_response("acme", "resp_2")
    assert got is not None and got.body == {"v": 2}


async def test_expired_responses_are_gone_and_swept(store: Store) -> None:
    await store.put_response(record("acme", "old", ttl=-60))
    await store.put_response(record("acme", "live"))
    assert await store.get_response("acme", "old") is None
    assert await store.delete_response("acme", "old") is False
    assert await store.sweep_responses(timeutil.now_str()) == 1
    assert await store.sweep_responses(timeutil.now_str()) == 0
    assert await store.get_response("acme", "live") is not None


async def test_a_long_conversation_fits(store: Store) -> None:
    """About 1 MB of JSON (beyond one DynamoDB item uncompressed) is kept and read back whole."""
    turns = [{"role": "user", "content": f"turn {i}: " + "the same words again " * 20} for i in range(2500)]
    await store.put_response(record("acme", "resp_long", body={"conversation": turns}))
    got = await store.get_response("acme", "resp_long")
    assert got is not None and got.body["conversation"] == turns
