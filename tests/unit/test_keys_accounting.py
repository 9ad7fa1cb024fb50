"""Keys (hashing, authenticator, cache, open mode) and accounting (estimates, pricing, cost summaries)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from tollgate.accounting import (
    Price,
    Pricing,
    image_token_bound,
    reservation_estimate,
    summarize_costs,
    usd,
)
from tollgate.errors import Forbidden, Unauthorized
from tollgate.keys import OPEN_PRINCIPAL, Authenticator, Principal, hash_key, key_from_headers, new_key_record
from tollgate.providers.base import ChatCall
from tollgate.schemas.openai import ChatCompletionRequest
from tollgate.store.audit_base import AuditEntry
from tollgate.store.base import ApiKey
from tollgate.timeutil import after


class FakeKeys:
    def __init__(self, *keys: ApiKey) -> None:
        self.keys = {k.key_hash: k for k in keys}
        self.lookups = 0

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        self.lookups += 1
        return self.keys.get(key_hash)

    async def any_keys(self) -> bool:
        return bool(self.keys)


def test_new_keys_are_random_prefixed_and_stored_hashed() -> None:
    key, record = new_key_record("acme", models=("openai/*",), pool="team", expires_in=60)
    other, _ = new_key_record("acme")
    assert key.startswith("tg-") and len(key) == 3 + 43 and key != other
    assert record.key_hash == hash_key(key) and key not in repr(record)
    assert record.expires_at is not None and record.pool == "team"


def test_key_from_headers() -> None:
    assert key_from_headers("Bearer tg-abc", None) == "tg-abc"
    assert key_from_headers("bearer  tg-abc ", None) == "tg-abc"
    assert key_from_headers(None, "tg-xyz") == "tg-xyz"
    assert key_from_headers("Basic dXNlcg==", None) is None
    assert key_from_headers("Bearer ", " ") is None


async def test_authenticator_checks_and_caches() -> None:
    key, record = new_key_record("acme", pool="team")
    store = FakeKeys(record)
    auth = Authenticator(store, cache_seconds=30, allow_open=True)  # type: ignore[arg-type]
    principal = await auth.authenticate(key, loopback=True)
    assert principal == Principal("acme", record.key_id, "team", None)
    await auth.authenticate(key, loopback=False)
    assert store.lookups == 1  # cached
    with pytest.raises(Unauthorized):
        await auth.authenticate(None, loopback=True)  # keys exist: open mode is over
    with pytest.raises(Unauthorized):
        await auth.authenticate("tg-unknown", loopback=True)


async def test_a_principal_spends_only_from_its_keys_pools() -> None:
    key, record = new_key_record("acme", pool="team", pools=("shared", "team", "shared"))
    assert record.pools == ("shared",)  # its own pool and repeats are not listed twice
    auth = Authenticator(FakeKeys(record), cache_seconds=0, allow_open=False)  # type: ignore[arg-type]
    principal = await auth.authenticate(key, loopback=False)
    assert principal.pools == ("shared",)
    principal.check_pool("team")
    principal.check_pool("shared")
    for other in ("default", "brandnewpool", "Team"):
        with pytest.raises(Forbidden) as refused:
            principal.check_pool(other)
        assert refused.value.code == "pool_not_allowed" and refused.value.param == "pool"
        assert repr(other) in refused.value.message
    with pytest.raises(Forbidden):
        OPEN_PRINCIPAL.check_pool("elsewhere")
    OPEN_PRINCIPAL.check_pool("default")


async def test_revocation_bites_after_the_cache_period() -> None:
    key, record = new_key_record("acme")
    store = FakeKeys(record)
    auth = Authenticator(store, cache_seconds=0, allow_open=False)  # type: ignore[arg-type]
    await auth.authenticate(key, loopback=False)
    store.keys[record.key_hash] = replace(record, revoked_at="2026-01-01T00:00:00.000000Z")
    with pytest.raises(Unauthorized) as info:
        await auth.authenticate(key, loopback=False)
    assert info.value.code == "key_revoked"


async def test_expired_key_and_open_mode() -> None:
    key, record = new_key_record("acme")
    expired = replace(record, expires_at=after(-1))
    auth = Authenticator(FakeKeys(expired), cache_seconds=0, allow_open=True)  # type: ignore[arg-type]
    with pytest.raises(Unauthorized) as info:
        await auth.authenticate(key, loopback=True)
    assert info.value.code == "key_expired"
    empty = Authenticator(FakeKeys(), cache_seconds=0, allow_open=True)  # type: ignore[arg-type]
    assert await empty.authenticate(None, loopback=True) == OPEN_PRINCIPAL
    assert await empty.authenticate("anything", loopback=True) == OPEN_PRINCIPAL
    with pytest.raises(Unauthorized):
        await empty.authenticate(None, loopback=False)
    closed = Authenticator(FakeKeys(), cache_seconds=0, allow_open=False)  # type: ignore[arg-type]
    with pytest.raises(Unauthorized):
        await closed.authenticate(None, loopback=True)  # Lambda: never open


def test_model_allow_list() -> None:
    principal = Principal("acme", "k", models=("openai/gpt-4o-mini", "claude/*", "smollm2"))
    assert principal.allows("openai", "gpt-4o-mini") and principal.allows("claude", "claude-x")
    assert principal.allows("llama_cpp", "smollm2")
    assert not principal.allows("openai", "gpt-4o")


def test_allow_list_patterns_name_their_provider() -> None:
    only_openai = Principal("acme", "k", models=("openai/*",))
    assert only_openai.allows("openai", "gpt-4o")
    assert not only_openai.allows("openrouter", "openai/gpt-4o")  # the bare model looks qualified
    assert not only_openai.allows("bedrock", "openai/gpt-4o")
    aliased = Principal("acme", "k", models=("anthropic/claude-*", "*/nova-*", "meta-llama/*"))
    assert aliased.allows("claude", "claude-x") and not aliased.allows("bedrock", "claude-x")
    assert aliased.allows("bedrock", "nova-lite") and aliased.allows("openrouter", "nova-pro")
    assert aliased.allows("openrouter", "meta-llama/llama-3") and aliased.allows("ollama", "meta-llama/x")
    assert not aliased.allows("openai", "gpt-4o")


def make_call(max_tokens: int = 100, **body: object) -> ChatCall:
    body.setdefault("messages", [{"role": "user", "content": "héllo"}])
    return ChatCall("r", "openai", "m", max_tokens, ChatCompletionRequest.model_validate(body))


def test_reservation_is_an_upper_bound() -> None:
    assert reservation_estimate(make_call()) == 6 + 8 + 16 + 100  # "héllo" is 6 UTF-8 bytes
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert reservation_estimate(make_call(tools=tools)) > reservation_estimate(make_call())


def test_every_image_part_counts_at_its_providers_bound() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    text = {"type": "text", "text": "héllo"}
    two = make_call(messages=[{"role": "user", "content": [text, image, image]}])
    images = 2 * image_token_bound("openai", "m")
    assert reservation_estimate(two) == reservation_estimate(make_call()) + images
    assert image_token_bound("openai", "gpt-4o-mini") > 48_000  # billed as 2,833 + 5,667 per tile
    assert all(image_token_bound(p, "m") >= 1_600 for p in ("claude", "bedrock", "ollama", "llama_cpp"))


def test_pricing_lookup_rules() -> None:
    pricing = Pricing.load()
    assert pricing.cost_micro_usd("openai", "gpt-4o-mini", 1_000_000, 0) == 150_000
    assert pricing.cost_micro_usd("openai", "gpt-4o-mini-2024-07-18", 1000, 1000) == 750
    assert pricing.cost_micro_usd("claude", "claude-3-5-haiku-20241022", 10, 10) == 48
    profile = pricing.price("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0")
    assert profile == pricing.price("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0")
    nova = pricing.price("bedrock", "global.amazon.nova-lite-v1:0")
    assert nova == Price.of(Decimal("0.06"), Decimal("0.24"))
    assert pricing.cost_micro_usd("llama_cpp", "anything", 10**6, 10**6) == 0
    assert pricing.cost_micro_usd("openai", "gpt-unknown", 10, 10) is None  # never guessed


def test_pricing_file_overrides_and_extends(tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"openai": {"gpt-4o-mini": ["1", "2"], "my-finetune": ["3.5", "7"]}}))
    pricing = Pricing.load(str(override))
    assert pricing.cost_micro_usd("openai", "gpt-4o-mini", 10, 10) == 30
    assert pricing.cost_micro_usd("openai", "my-finetune", 2, 2) == 21
    assert pricing.cost_micro_usd("openai", "gpt-4o", 1, 0) is not None  # the packaged rest stays


def test_usd_and_summaries() -> None:
    assert usd(1) == "0.000001" and usd(1_234_567) == "1.234567"

    def entry(model: str, day: str, cost: int | None) -> AuditEntry:
        return AuditEntry(
            "t", 1, f"{day}T10:00:00.000000Z", "r", "k1", "openai", model, "ok", 5, 7, cost, "", "", "", ""
        )

    rows = [entry("a", "2026-11-01", 10), entry("b", "2026-11-01", None), entry("a", "2026-11-02", 5)]
    by_model = summarize_costs(rows, "model")
    assert by_model["total_cost_micro_usd"] == 15 and by_model["unpriced_requests"] == 1
    assert [(g["group"], g["requests"], g["cost_micro_usd"]) for g in by_model["groups"]] == [
        ("openai/a", 2, 15),
        ("openai/b", 1, 0),
    ]
    assert [g["group"] for g in summarize_costs(rows, "day")["groups"]] == ["2026-11-01", "2026-11-02"]
    assert summarize_costs([], None)["total_cost_usd"] == 0.0
