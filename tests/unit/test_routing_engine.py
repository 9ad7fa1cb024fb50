"""The routing config (validation names the field), deployment health, and the attempt plan."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from tollgate.engine.health import HealthBook
from tollgate.engine.plan import AttemptPlan, Candidate, OnlyPlan, plan_for
from tollgate.engine.retry import delay_before, exhausted, retryable
from tollgate.engine.routes import ConfigError, load_config, parse_config
from tollgate.errors import BudgetExceeded, TollgateError
from tollgate.providers.bedrock_errors import error_for_code
from tollgate.providers.http_errors import error_for_status

GOOD = """
models:
  - name: smart
    deployments:
      - {provider: openai, model: gpt-4.1, weight: 2}
      - {provider: anthropic, model: claude-x, api_key_env: CLAUDE_KEY_2}
      - {provider: bedrock, model: us.amazon.nova-pro-v1:0, region: us-west-2}
    fallbacks: [cheap]
  - name: cheap
    deployments: [{provider: llama.cpp, model: smollm2}]
router: {retries: 3, strategy: least-busy}
"""


def test_a_good_config_parses_with_canonical_providers() -> None:
    config = parse_config(GOOD, "test.yaml")
    smart = config.model("smart")
    assert smart is not None and [d.provider for d in smart.deployments] == ["openai", "claude", "bedrock"]
    assert config.router.retries == 3 and config.router.cooldown_seconds == 30
    assert config.model("cheap").deployments[0].provider == "llama_cpp"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "models: [{name: a, deployments: [{provider: nope, model: m}]}]",
            "models[0].deployments[0].provider",
        ),
        ("models: [{name: a, deployments: [{provider: openai, model: m}], fallbacks: [b]}]", "unknown model"),
        (
            "models: [{name: a, deployments: [{provider: openai, model: m}], fallbacks: [b]},"
            " {name: b, deployments: [{provider: openai, model: m}], fallbacks: [a]}]",
            "cycle: a -> b -> a",
        ),
        ("models: [{name: a, deployments: [{provider: openai, model: m, weight: 0}]}]", "weight"),
        ("models: [{name: a, deployments: [{provider: openai, model: m, weight: -1}]}]", "weight"),
        ("models: [{name: a, deployments: [{provider: openai}]}]", "models[0].deployments[0].model"),
        ("models: [{name: a, deployments: []}]", "models[0].deployments"),
        ("models: [{name: a, deployments: [{provider: openai, model: m, region: us-east-1}]}]", "bedrock"),
        ("router: {retries: -1}", "router.retries"),
        ("router: {strategy: fastest}", "router.strategy"),
        ("router: {retries: 1, surprise: 2}", "router.surprise"),
        ("[1, 2]", "top level"),
        ("models: [", "not valid YAML"),
    ],
)
def test_a_bad_config_names_the_field(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    assert "bad.yaml" in str(info.value) and named in str(info.value)


def test_load_reads_a_file_an_ssm_parameter_or_nothing(tmp_path: Path) -> None:
    assert load_config(None).router.retries == 0 and load_config(None).models == []
    path = tmp_path / "routes.json"
    path.write_text('{"models": [{"name": "x", "deployments": [{"provider": "openai", "model": "m"}]}]}')
    assert load_config(str(path)).model("x") is not None  # JSON is YAML
    fetched: list[tuple[str, float]] = []

    def fake_ssm(name: str, max_age: float) -> str:
        fetched.append((name, max_age))
        return GOOD

    assert load_config("ssm:/tollgate/config", max_age=60, fetch_ssm=fake_ssm).model("smart") is not None
    assert fetched == [("/tollgate/config", 60)]
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cooldown_after_allowed_failures_then_one_half_open_probe() -> None:
    clock = Clock()
    book = HealthBook(allowed_failures=2, cooldown_seconds=30, clock=clock)
    fail(book, "a")
    assert not book.cooling("a")
    assert fail(book, "a") is True and book.cooling("a")
    clock.now += 31
    assert not book.cooling("a")
    book.started("a")  # the probe
    assert book.cooling("a")  # while the probe is in flight, others still skip it
    book.succeeded("a", 0.05)
    assert book.views(["a"])[0]["in_flight"] == 1  # answered, still streaming
    book.ended("a")
    view = book.views(["a"])[0]
    assert view["state"] == "healthy" and view["consecutive_failures"] == 0 and view["latency_p50_ms"] == 50
    assert view["in_flight"] == 0
    fail(book, "a")
    clock.now += 1
    assert not book.cooling("a")  # one failure after recovery does not cool it down


def fail(book: HealthBook, name: str) -> bool:
    book.started(name)
    cooled = book.failed(name, "503")
    book.ended(name)
    return cooled


def test_a_failed_probe_cools_down_again() -> None:
    clock = Clock()
    book = HealthBook(allowed_failures=1, cooldown_seconds=10, clock=clock)
    fail(book, "a")
    clock.now += 11
    assert fail(book, "a") is True and book.cooling("a")


def cand(name: str, weight: float = 1.0) -> Candidate:
    return Candidate(deployment=name, provider="openai", model=name, weight=weight)


def test_plan_walks_deployments_then_fallbacks_then_starts_over() -> None:
    book = HealthBook(allowed_failures=3, cooldown_seconds=30)
    plan = AttemptPlan([[cand("a"), cand("b")], [cand("f")]], book, rng=random.Random(1))
    first_two = {plan.next().deployment, plan.next().deployment}
    assert first_two == {"a", "b"}
    assert plan.next().deployment == "f"
    assert plan.next().deployment in {"a", "b"}  # retries beyond every candidate: a new pass


def test_plan_skips_a_cooling_deployment_while_another_is_healthy() -> None:
    clock = Clock()
    book = HealthBook(allowed_failures=1, cooldown_seconds=30, clock=clock)
    fail(book, "a")
    plan = AttemptPlan([[cand("a"), cand("b")], [cand("f")]], book)
    assert [plan.next().deployment for _ in range(3)] == ["b", "f", "b"]


def test_plan_tries_cooling_deployments_least_recently_failed_first() -> None:
    clock = Clock()
    book = HealthBook(allowed_failures=1, cooldown_seconds=30, clock=clock)
    for name in ("b", "a"):
        fail(book, name)
        clock.now += 1
    plan = AttemptPlan([[cand("a"), cand("b")]], book)
    assert [plan.next().deployment for _ in range(3)] == ["b", "a", "b"]
    single = AttemptPlan([[cand("a")]], book)
    assert [single.next().deployment for _ in range(3)] == ["a", "a", "a"]  # retries on one deployment


def test_a_single_candidate_gets_the_fast_plan_with_the_same_picks() -> None:
    clock = Clock()
    book = HealthBook(allowed_failures=1, cooldown_seconds=30, clock=clock)
    only = plan_for([[cand("a")]], book)
    assert isinstance(only, OnlyPlan)
    for cooling in (False, True):  # healthy, then cooling down: the one deployment is still tried
        if cooling:
            fail(book, "a")
        assert book.cooling("a") is cooling
        general = AttemptPlan([[cand("a")]], book)
        assert [only.next() for _ in range(3)] == [general.next() for _ in range(3)] == [cand("a")] * 3
    assert isinstance(plan_for([[cand("a"), cand("b")]], book), AttemptPlan)
    assert isinstance(plan_for([[cand("a")], [cand("f")]], book), AttemptPlan)


def test_weights_and_least_busy() -> None:
    book = HealthBook(allowed_failures=3, cooldown_seconds=30)
    rng = random.Random(7)
    picks = [AttemptPlan([[cand("a", 9), cand("b", 1)]], book, rng=rng).next().deployment for _ in range(500)]
    assert 400 < picks.count("a") < 490
    book.started("a")
    busy = AttemptPlan([[cand("a"), cand("b")]], book, strategy="least-busy")
    assert busy.next().deployment == "b"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (error_for_status("openai", 408, "slow"), True),
        (error_for_status("openai", 409, "conflict"), True),
        (error_for_status("openai", 429, "busy"), True),
        (error_for_status("openai", 500, "oops"), True),
        (error_for_status("openai", 502, "bad gateway"), True),
        (error_for_status("openai", 503, "down"), True),
        (error_for_status("claude", 529, "overloaded"), True),
        (error_for_code("ThrottlingException", "slow down"), True),
        (error_for_code("ServiceUnavailableException", "down"), True),
        (error_for_code("ModelNotReadyException", "warming"), True),
        (error_for_status("openai", 400, "bad"), False),
        (error_for_status("openai", 401, "key"), False),
        (error_for_status("openai", 403, "no"), False),
        (error_for_status("openai", 404, "model"), False),
        (error_for_status("openai", 413, "big"), False),
        (error_for_status("openai", 422, "shape"), False),
        (error_for_code("ValidationException", "bad"), False),
        (error_for_code("AccessDeniedException", "no"), False),
        (BudgetExceeded("no budget"), False),
    ],
)
def test_what_is_worth_another_attempt(error: TollgateError, expected: bool) -> None:
    assert retryable(error) is expected


def test_backoff_honours_retry_after_up_to_its_cap() -> None:
    policy = parse_config("router: {backoff_seconds: 0.5, retry_after_max_seconds: 5}", "t").router
    rng = random.Random(3)
    assert delay_before(1, TollgateError("x", retry_after=2.0), policy, rng) == 2.0
    assert delay_before(1, TollgateError("x", retry_after=60.0), policy, rng) == 0.0  # move on at once
    waits = [delay_before(3, TollgateError("x"), policy, rng) for _ in range(200)]
    assert min(waits) >= 0 and max(waits) <= 2.0 and statistics.mean(waits) > 0.5  # full jitter up to 0.5*2^2


def test_the_exhausted_error_keeps_the_last_class_and_lists_attempts() -> None:
    last = error_for_status("claude", 529, "overloaded")
    error = exhausted(last, ["openai:a 503", "claude:c 529"])
    assert type(error) is type(last) and error.upstream_status == 529
    assert error.message.startswith("2 attempts failed (openai:a 503, claude:c 529)")
    assert exhausted(last, ["claude:c 529"]) is last
