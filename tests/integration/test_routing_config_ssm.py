"""TOLLGATE_CONFIG=ssm:/name on SSM (moto): read at start, re-read after TOLLGATE_CONFIG_MAX_AGE_SECONDS, a
changed config swapped in without a restart, a broken one ignored (the running config stays)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import ServerThread
from tollgate.config import Settings
from tollgate.engine.routes import ConfigError
from tollgate.store.sqlite import SQLiteStore

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
REGION = "us-east-1"
NAME = "/tollgate/config"


def routes(url: str, model: str) -> str:
    deployment = f"{{provider: openai, model: {model}, base_url: '{url}/v1'}}"
    return f"models: [{{name: smart, deployments: [{deployment}]}}]"


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with moto.mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def settings(name: str = NAME) -> Settings:
    return Settings(
        default_provider="openai",
        openai_api_key="sk",
        config_source=f"ssm:{name}",
        config_max_age_seconds=1,
    )


def test_a_changed_parameter_is_picked_up_without_a_restart(
    ssm: Any, fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread], tmp_path: Path
) -> None:
    ssm.put_parameter(Name=NAME, Value=routes(fake_openai.url, "first-model"), Type="String")
    gateway = start_gateway(settings(), store=SQLiteStore(str(tmp_path / "s.db")))

    def model() -> str:
        body = {"model": "smart", "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.headers["x-tollgate-model"]

    assert model() == "first-model"
    ssm.put_parameter(Name=NAME, Value=routes(fake_openai.url, "second-model"), Type="String", Overwrite=True)
    time.sleep(1.2)
    assert model() == "second-model"
    ssm.put_parameter(Name=NAME, Value="models: [{name: smart}]", Type="String", Overwrite=True)  # broken
    time.sleep(1.2)
    assert model() == "second-model"


def test_a_bad_parameter_refuses_to_start(ssm: Any) -> None:
    from tollgate.app import create_app

    ssm.put_parameter(Name="/tollgate/bad", Value="router: {retries: many}", Type="String")
    with pytest.raises(ConfigError, match=r"ssm:/tollgate/bad: router.retries"):
        create_app(settings("/tollgate/bad"))
