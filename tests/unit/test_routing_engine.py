"""The routing config (validation names the field), deployment health, and the attempt plan."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tollgate.engine.health import HealthBook
from tollgate.engine.plan import AttemptPlan, Candidate
from tollgate.engine.routes import ConfigError, load_config, parse_config

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


def test_weights_and_least_busy() -> None:
    book = HealthBook(allowed_failures=3, cooldown_seconds=30)
    rng = random.Random(7)
    picks = [AttemptPlan([[cand("a", 9), cand("b", 1)]], book, rng=rng).next().deployment for _ in range(500)]
    assert 400 < picks.count("a") < 490
    book.started("a")
    busy = AttemptPlan([[cand("a"), cand("b")]], book, strategy="least-busy")
    assert busy.next().deployment == "b"
