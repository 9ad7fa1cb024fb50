"""Issue 12 attacked as a hostile tenant and as an operator (SQLite, fake OpenAI, a real socket, an
injected clock): hostile admin input never a 500 and writes nothing when refused; rotating twice ends the
first old secret too; a request that fails upstream gives its USD hold and its TPM back."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clock_helpers import ManualClock
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, Gateway, gateway_settings
from tollgate.store.sqlite import SQLiteStore

START = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def gw(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path, clock: ManualClock
) -> Gateway:
    store = SQLiteStore(str(tmp_path / "state.db"))
    settings = gateway_settings(fake_openai)
    return Gateway(start_gateway(settings, include_admin=True, store=store, clock=clock), fake_openai)


def _key(gw: Gateway, **fields: Any) -> tuple[str, str]:
    response = gw.admin("POST", "/keys", json={"tenant": "acme", "pool": "team", **fields})
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["key_id"]


def _raw(gw: Gateway, method: str, path: str, body: str) -> httpx.Response:
    """A body sent as is (NaN, Infinity, 1e400 and repeated keys are not JSON a client library writes)."""
    headers = {"authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}
    return httpx.request(method, f"{gw.url}/admin{path}", content=body.encode(), headers=headers, timeout=10)


def _state(gw: Gateway) -> tuple[Any, Any, Any]:
    return (
        gw.admin("GET", "/limits").json(),
        gw.admin("GET", "/budgets", params={"tenant": "acme"}).json(),
        [(k["key_id"], k.get("revoked_at")) for k in gw.admin("GET", "/keys").json()["keys"]],
    )


HOSTILE = [
    ("PUT", "/limits/acme", '{"rpm": NaN}'),
    ("PUT", "/limits/acme", '{"rpm": Infinity}'),
    ("PUT", "/limits/acme", '{"rpm": -Infinity}'),
    ("PUT", "/limits/acme", '{"rpm": 1e2}'),
    ("PUT", "/limits/acme", '{"rpm": 1e400}'),
    ("PUT", "/limits/acme", '{"rpm": 100000000000000000000000000000000000000}'),
    ("PUT", "/limits/acme", '{"rpm": "\u0661\u0662"}'),
    ("PUT", "/limits/acme", '{"tpm": 5, "tpm": -5}'),
    ("PUT", "/limits/acme/keys/KEY%23x", '{"rpm": 5}'),
    ("PUT", "/limits/acme%23tenant", '{"rpm": 5}'),
    ("PUT", "/limits/acme%2Fx", '{"rpm": 5}'),
    ("PUT", "/budgets/acme/team", '{"usd": NaN}'),
    ("PUT", "/budgets/acme/team", '{"usd": Infinity}'),
    ("PUT", "/budgets/acme/team", '{"usd": 1e400}'),
    ("PUT", "/budgets/acme/team", '{"usd": -0.0000001}'),
    ("PUT", "/budgets/acme/team", '{"usd": 1e-7}'),
    ("PUT", "/budgets/acme/team", '{"usd": 100000000000000000000000000000000000000}'),
    ("PUT", "/budgets/acme/team", '{"usd": "\u0661\u0662"}'),
    ("PUT", "/budgets/acme/team", '{"usd": "5"}'),
    ("PUT", "/budgets/acme/team", '{"tokens": 1e3}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "Monthly"}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "monthly", "timezone": "Etc/../UTC"}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "monthly", "timezone": "UTC\\u0000"}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "monthly", "timezone": "/etc/localtime"}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "monthly", "timezone": "Mars/Olympus"}'),
    ("PUT", "/budgets/acme/team", '{"usd": 5, "period": "daily", "timezone": "' + "A" * 5000 + '"}'),
    ("PUT", "/budgets/acme/team", '{"alert_at": [50.5]}'),
    ("PUT", "/budgets/acme/team", '{"alert_at": [0]}'),
    ("PUT", "/budgets/acme/team", '{"alert_at": [NaN]}'),
    ("PUT", "/budgets/acme/team", '{"alert_at": "50,80"}'),
    ("PUT", "/budgets/acme/team%23x", '{"usd": 5}'),
    ("PUT", "/budgets/acme%23USD/team", '{"usd": 5}'),
    ("PUT", "/keys/KEY/budget", '{"usd": NaN}'),
    ("PUT", "/keys/KEY/budget", '{"usd": 1e400}'),
    ("PUT", "/keys/KEY/budget", '{"tokens": 5}'),
    ("PUT", "/keys/KEY/budget", '{"period": "daily", "usd": Infinity}'),
    ("PUT", "/keys/key_nothere/budget", '{"usd": 5}'),
    ("POST", "/keys/KEY/rotate", '{"grace_seconds": NaN}'),
    ("POST", "/keys/KEY/rotate", '{"grace_seconds": 1e3}'),
    ("POST", "/keys/KEY/rotate", '{"grace_seconds": 1e400}'),
    ("POST", "/keys", '{"tenant": "acme", "budget_usd": NaN}'),
    ("POST", "/keys", '{"tenant": "acme", "budget_usd": 5, "budget_period": "hourly"}'),
    ("POST", "/keys", '{"tenant": "acme", "budget_usd": 5, "budget_timezone": "Nowhere/City"}'),
    ("POST", "/keys", '{"tenant": "acme#USD", "budget_usd": 5}'),
]


@pytest.mark.parametrize(("method", "path", "body"), HOSTILE)
def test_hostile_admin_input_is_a_4xx_and_writes_nothing(
    gw: Gateway, method: str, path: str, body: str
) -> None:
    _, key_id = _key(gw)
    before = _state(gw)
    response = _raw(gw, method, path.replace("KEY", key_id), body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert _state(gw) == before


def test_rotating_again_ends_the_first_old_secret_with_the_new_grace(gw: Gateway, clock: ManualClock) -> None:
    """Rotate with an hour's grace, then again with none (the old secret leaked): every earlier secret
    stops now, not only the one the second rotation replaced."""
    first, key_id = _key(gw)
    second = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 3600}).json()["key"]
    assert gw.chat(first).status_code == 200  # in its grace
    third = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 0}).json()["key"]
    assert [gw.chat(k).status_code for k in (first, second, third)] == [401, 401, 200]
    # a longer second grace never extends the first one
    fourth = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 600}).json()["key"]
    fifth = gw.admin("POST", f"/keys/{key_id}/rotate", json={"grace_seconds": 7200}).json()["key"]
    clock.now = START + timedelta(seconds=601)
    assert [gw.chat(k).status_code for k in (third, fourth, fifth)] == [401, 200, 200]


def test_a_request_that_fails_upstream_gives_back_its_usd_hold_and_tpm(
    gw: Gateway, fake_openai: FakeOpenAI, clock: ManualClock
) -> None:
    key, key_id = _key(gw, budget_usd=1, budget_period="daily")
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"rpm": 100, "tpm": 10_000}).status_code == 200
    fake_openai.enqueue(Script(status=400, error_message="bad request upstream"))
    failed = gw.chat(key)
    assert failed.status_code == 400, failed.text
    assert failed.headers["x-ratelimit-limit-tokens"] == "10000"
    shown = {(b["kind"], b["scope"]): b for b in gw.get(key, "/v1/budgets").json()["budgets"]}
    assert shown["usd", "key"]["reserved"] == 0 and shown["usd", "key"]["spent"] == 0
    limits = gw.get(key, "/v1/limits").json()
    used = [v["tokens"]["used"] for v in limits["limits"] if "tokens" in v]
    assert used == [0], limits


SCHEMA = {"type": "json_schema", "json_schema": {"name": "big", "schema": {"description": "x " * 20_000}}}


@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": SCHEMA},  # OpenAI bills a structured-output schema as prompt tokens
        {"functions": [{"name": "f", "description": "x " * 20_000, "parameters": {}}]},  # passed through
    ],
)
def test_prompt_tokens_outside_the_messages_count_in_the_usd_bound_and_tpm(
    gw: Gateway, fake_openai: FakeOpenAI, extra: dict[str, Any]
) -> None:
    """A 40 KB schema (or passthrough field) with a one-word message: the upstream bills ~10,000 prompt
    tokens, so the hold must cover them; a $0.00006 budget refuses it before the upstream call instead of
    being overspent 25 times over (and a 5,000 TPM limit refuses it too)."""
    key, key_id = _key(gw, budget_usd=0.00006, budget_period="daily")
    usage = {"prompt_tokens": 10_011, "completion_tokens": 3, "total_tokens": 10_014}
    fake_openai.enqueue(Script(usage_override=usage))
    refused = gw.chat(key, extra)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert fake_openai.requests == []  # refused before the upstream call
    (daily,) = [b for b in gw.get(key, "/v1/budgets").json()["budgets"] if b["kind"] == "usd"]
    assert daily["spent"] <= daily["limit"] and daily["reserved"] == 0
    assert gw.admin("PUT", f"/keys/{key_id}/budget", json={"usd": None}).status_code == 200
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"tpm": 5_000}).status_code == 200
    limited = gw.chat(key, extra)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"


def _usd(gw: Gateway, key: str) -> dict[str, Any]:
    (view,) = [b for b in gw.get(key, "/v1/budgets").json()["budgets"] if b["kind"] == "usd"]
    return dict(view)


def test_a_client_that_disconnects_mid_stream_releases_its_usd_hold_and_tpm(
    gw: Gateway, fake_openai: FakeOpenAI
) -> None:
    key, key_id = _key(gw, budget_usd=1, budget_period="monthly")
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"tpm": 100_000}).status_code == 200
    fake_openai.enqueue(Script(texts=["tok"] * 200, delay=0.05))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", json=body, headers={"x-api-key": key}, timeout=20
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-tokens"] == "100000"
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # hang up after the first chunk
    deadline = time.monotonic() + 20
    while _usd(gw, key)["reserved"] != 0:
        assert time.monotonic() < deadline, "the hold was never settled"
        time.sleep(0.1)
    view = _usd(gw, key)
    entries = gw.get(key, "/v1/audit").json()["entries"]
    assert len(entries) == 1 and view["spent"] == entries[0]["cost_micro_usd"]
    limits = gw.get(key, "/v1/limits").json()["limits"]
    (tokens,) = [v["tokens"] for v in limits if "tokens" in v]
    assert tokens["used"] == entries[0]["prompt_tokens"] + entries[0]["completion_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"max_tokens": 10_000_000}, 429, "budget_exceeded"),  # the bound ($6) is past the $1 budget
        ({"max_completion_tokens": 10_000_000, "stream": True}, 429, "budget_exceeded"),
        ({"max_tokens": 10_000_001}, 400, None),
        ({"n": 2}, 400, None),
        ({"max_tokens": 1e3}, 400, None),
        ({"model": "gpt-4o-mini-unpriced"}, 400, "model_not_priced"),
        ({"loop_mode": "agent", "loop_max_turns": 3, "max_tokens": 10_000_000}, 429, "budget_exceeded"),
    ],
)
def test_hostile_requests_under_a_usd_budget_are_refused_and_hold_nothing(
    gw: Gateway, body: dict[str, Any], status: int, code: str | None
) -> None:
    key, _ = _key(gw, budget_usd=1, budget_period="daily")
    refused = gw.chat(key, body)
    assert refused.status_code == status, refused.text
    if code is not None:
        assert refused.json()["error"]["code"] == code
    view = _usd(gw, key)
    assert view["reserved"] == 0 and view["spent"] == 0
    assert gw.get(key, "/v1/tokens/pools").json()["pools"][0]["reserved"] == 0


def test_hoosh_token_reservations_count_against_the_tpm_limit(gw: Gateway) -> None:
    """/v1/tokens/reserve is usage too: a key with 1,000 tokens per minute cannot reserve a million."""
    key, key_id = _key(gw)
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"tpm": 1000}).status_code == 200

    def reserve(tokens: int) -> httpx.Response:
        return httpx.post(
            f"{gw.url}/v1/tokens/reserve", json={"tokens": tokens}, headers={"x-api-key": key}, timeout=10
        )

    first = reserve(800)
    assert first.status_code == 200, first.text
    assert first.headers["x-ratelimit-remaining-tokens"] == "200"
    for tokens in (300, 1_000_000):
        refused = reserve(tokens)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "retry-after" in refused.headers and refused.headers["x-ratelimit-limit-tokens"] == "1000"
    gw.set_budget("acme", "team", 900)
    exhausted = reserve(150)  # fits the TPM, not the pool: the TPM it counted is given back
    assert exhausted.status_code == 429 and exhausted.json()["error"]["code"] == "budget_exceeded"
    (limit,) = gw.get(key, "/v1/limits").json()["limits"]
    assert limit["tokens"]["used"] == 800
    pool = gw.get(key, "/v1/tokens/pools").json()["pools"][0]
    assert pool["reserved"] == 800 and pool["open_reservations"] == 1  # the refused ones hold nothing


@pytest.mark.parametrize("stream", [True, False])
def test_an_upstream_that_breaks_off_mid_answer_settles_the_hold_once(
    gw: Gateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    key, _ = _key(gw, budget_usd=1, budget_period="weekly", budget_timezone="Asia/Kolkata")
    fake_openai.enqueue(Script(texts=["tok"] * 20, fail_after=5))
    broken = gw.chat(key, {"stream": stream})
    assert broken.status_code in (200, 502), broken.text  # an SSE error event, or a 502 when buffered
    deadline = time.monotonic() + 20
    while _usd(gw, key)["reserved"] != 0:
        assert time.monotonic() < deadline, "the hold was never settled"
        time.sleep(0.1)
    entries = gw.get(key, "/v1/audit").json()["entries"]
    assert len(entries) == 1 and _usd(gw, key)["spent"] == (entries[0]["cost_micro_usd"] or 0)
    assert gw.get(key, "/v1/tokens/pools").json()["pools"][0]["reserved"] == 0


@pytest.mark.parametrize("stream", [True, False])
def test_an_agent_loop_carries_the_token_headers_of_a_tpm_limit(gw: Gateway, stream: bool) -> None:
    key, key_id = _key(gw)
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"tpm": 100_000}).status_code == 200
    answer = gw.chat(key, {"loop_mode": "agent", "loop_max_turns": 2, "stream": stream})
    assert answer.status_code == 200, answer.text
    assert answer.headers.get("x-ratelimit-limit-tokens") == "100000", dict(answer.headers)


def test_a_tenant_refusal_gives_back_what_the_keys_limit_counted(gw: Gateway, clock: ManualClock) -> None:
    clock.now = START.replace(second=1)  # all in one minute
    key, key_id = _key(gw)
    assert gw.admin("PUT", f"/limits/acme/keys/{key_id}", json={"rpm": 5}).status_code == 200
    assert gw.admin("PUT", "/limits/acme", json={"rpm": 2}).status_code == 200
    codes = [gw.chat(key).status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    views = {v["scope"]: v["requests"] for v in gw.get(key, "/v1/limits").json()["limits"]}
    assert views["tenant"]["used"] == 2 and views["key"]["used"] == 2  # the refused two were given back


OPUS = "anthropic/claude-opus-4.1"


@pytest.fixture
def openrouter_gw(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> Gateway:
    """OpenRouter on the fake; the price table knows the dear model the fake may answer as."""
    (tmp_path / "prices.json").write_text(json.dumps({"openrouter": {OPUS: {"input": "15", "output": "75"}}}))
    settings = gateway_settings(
        fake_openai,
        openrouter_api_key="sk-or-upstream",
        openrouter_base_url=f"{fake_openai.url}/v1",  # type: ignore[attr-defined]
        pricing_file=str(tmp_path / "prices.json"),
    )
    store = SQLiteStore(str(tmp_path / "state.db"))
    return Gateway(start_gateway(settings, include_admin=True, store=store), fake_openai)


def test_openrouter_models_cannot_take_a_key_past_its_allow_list(
    openrouter_gw: Gateway, fake_openai: FakeOpenAI
) -> None:
    key, _ = _key(openrouter_gw, models=["openrouter/openai/gpt-4o-mini"])
    body = {"model": "openrouter/openai/gpt-4o-mini", "models": [OPUS], "route": "fallback"}
    assert openrouter_gw.chat(key, body).status_code == 200
    ((_, _, sent),) = fake_openai.requests
    assert sent["model"] == "openai/gpt-4o-mini" and "models" not in sent and "route" not in sent


def test_an_answer_from_another_model_is_priced_as_that_model_and_logged(
    openrouter_gw: Gateway, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream answered as a dearer model than the one called: priced as what served (the table knows
    it), with a warning, never silently as the cheaper one."""
    caplog.set_level(logging.WARNING, logger="tollgate.route")
    key, _ = _key(openrouter_gw, models=["openrouter/openai/gpt-4o-mini"])
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    for stream in (False, True):
        fake_openai.enqueue(Script(model=OPUS, usage_override=usage))
        body = {"model": "openrouter/openai/gpt-4o-mini", "stream": stream}
        answered = openrouter_gw.chat(key, body)
        assert answered.status_code == 200, answered.text
    # a dated snapshot of the model called is that model; one the table does not know is priced as called
    for answered in ("openai/gpt-4o-mini-2024-07-18", "mystery/model"):
        fake_openai.enqueue(Script(model=answered, usage_override=usage))
        assert openrouter_gw.chat(key, {"model": "openrouter/openai/gpt-4o-mini"}).status_code == 200
    entries = openrouter_gw.get(key, "/v1/audit").json()["entries"]
    mini = ("openai/gpt-4o-mini", 750)  # $0.15 + $0.60 per M
    priced = sorted((e["model"], e["cost_micro_usd"]) for e in entries)
    assert priced == sorted([(OPUS, 90_000)] * 2 + [mini] * 2)
    mismatches = [r.getMessage() for r in caplog.records if "served_model_differs" in r.getMessage()]
    assert len(mismatches) == 3 and "mystery/model" in mismatches[2], mismatches
