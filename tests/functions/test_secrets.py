"""Settings from a Secrets Manager secret (moto), and the SnapStart after-restore refresh."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.contract.backend_dynamodb import aws_environment
from tollgate.app import create_admin_app, create_app
from tollgate.config import Settings
from tollgate.secrets import known_names, load_settings, settings_from_secret

SECRET = {
    "OPENAI_API_KEY": "sk-from-secret",
    "CLAUDE_API_KEY": "claude-from-secret",
    "TOLLGATE_ADMIN_KEY": "admin-from-secret",
    "TOLLGATE_AUDIT_KEY": "audit-from-secret",
    "LLAMA_CPP_API_KEY": "llama-from-secret",
    "SOMETHING_ELSE": "value-never-logged",
}


@pytest.fixture
def secrets_manager(tmp_path: Path) -> Iterator[Any]:
    """A moto Secrets Manager; powertools' cached provider is dropped before and after."""
    import boto3
    import moto
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()
    with aws_environment(tmp_path, None), moto.mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    base.DEFAULT_PROVIDERS.clear()


def put_secret(client: Any, values: dict[str, str]) -> str:
    arn: str = client.create_secret(Name="tollgate", SecretString=json.dumps(values))["ARN"]
    return arn


def test_known_names_are_the_environment_variables() -> None:
    names = known_names()
    assert {"OPENAI_API_KEY", "TOLLGATE_ADMIN_KEY", "ANTHROPIC_API_KEY", "AWS_REGION"} <= names
    assert "SOMETHING_ELSE" not in names


def test_without_an_arn_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    settings = load_settings()
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == "sk-env"


def test_secret_values_override_the_environment(
    secrets_manager: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "claude-env")  # another alias of the same setting
    monkeypatch.setenv("OPENAI_MODEL", "gpt-from-env")  # not in the secret: stays
    monkeypatch.setenv("TOLLGATE_SECRET_ARN", put_secret(secrets_manager, SECRET))
    with caplog.at_level(logging.WARNING, logger="tollgate"):
        settings = load_settings()
    values = {
        "openai": settings.openai_api_key,
        "claude": settings.claude_api_key,
        "admin": settings.admin_key,
        "audit": settings.audit_key,
        "llama": settings.llama_cpp_api_key,
    }
    assert {name: v.get_secret_value() if v else None for name, v in values.items()} == {
        "openai": "sk-from-secret",
        "claude": "claude-from-secret",
        "admin": "admin-from-secret",
        "audit": "audit-from-secret",
        "llama": "llama-from-secret",
    }
    assert settings.openai_model == "gpt-from-env"
    assert "SOMETHING_ELSE" in caplog.text and "value-never-logged" not in caplog.text


def test_settings_from_secret_ignores_unknown_keys(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tollgate"):
        settings = settings_from_secret({"TOLLGATE_DEFAULT_PROVIDER": "anthropic", "NOPE": "x"})
    assert settings.default_provider == "claude"
    assert "NOPE" in caplog.text


@pytest.fixture
def snapstart(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """The Lambda runtime's ``snapshot_restore_py`` module, recording the hooks registered with it."""
    hooks: list[Callable[[], None]] = []
    module = ModuleType("snapshot_restore_py")
    module.register_after_restore = lambda fn, *args, **kwargs: hooks.append(fn)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    return hooks


def _rotate(client: Any, arn: str, values: dict[str, str]) -> None:
    client.put_secret_value(SecretId=arn, SecretString=json.dumps(values))


def test_after_restore_hook_refreshes_the_live_context(
    secrets_manager: Any, monkeypatch: pytest.MonkeyPatch, snapstart: list[Callable[[], None]], tmp_path: Path
) -> None:
    arn = put_secret(secrets_manager, SECRET)
    monkeypatch.setenv("TOLLGATE_SECRET_ARN", arn)
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))
    app = create_admin_app()
    ctx = app.state["ctx"]
    assert len(snapstart) == 1 and ctx.ledger.audit_key == b"audit-from-secret"

    _rotate(secrets_manager, arn, {**SECRET, "TOLLGATE_AUDIT_KEY": "audit-2", "OPENAI_API_KEY": "sk-2"})
    snapstart[0]()  # what the runtime does after a restore

    assert ctx.settings.admin_key.get_secret_value() == "admin-from-secret"
    assert ctx.ledger.audit_key == b"audit-2"
    assert ctx.router.configs["openai"].api_key.get_secret_value() == "sk-2"


async def test_refresh_rebuilds_the_http_adapters(
    secrets_manager: Any, monkeypatch: pytest.MonkeyPatch, snapstart: list[Callable[[], None]], tmp_path: Path
) -> None:
    import httpx

    from tollgate.secrets import refresh_context

    arn = put_secret(secrets_manager, SECRET)
    monkeypatch.setenv("TOLLGATE_SECRET_ARN", arn)
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))
    ctx = create_app().state["ctx"]
    assert len(snapstart) == 1
    async with httpx.AsyncClient() as client:
        from tollgate.providers.registry import build_providers

        ctx.http, ctx.providers = client, build_providers(ctx.settings, client)
        bedrock = ctx.providers["bedrock"]
        refresh_context(ctx, Settings(OPENAI_API_KEY="sk-3", TOLLGATE_AUDIT_KEY="a3"))
        assert ctx.providers["openai"]._headers["Authorization"] == "Bearer sk-3"
        assert ctx.providers["bedrock"] is bedrock
        assert ctx.ledger.audit_key == b"a3"


def test_a_failed_refresh_keeps_the_old_values(
    secrets_manager: Any, monkeypatch: pytest.MonkeyPatch, snapstart: list[Callable[[], None]], tmp_path: Path
) -> None:
    arn = put_secret(secrets_manager, SECRET)
    monkeypatch.setenv("TOLLGATE_SECRET_ARN", arn)
    monkeypatch.setenv("TOLLGATE_SQLITE_PATH", str(tmp_path / "t.db"))
    ctx = create_admin_app().state["ctx"]
    secrets_manager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    snapstart[0]()
    assert ctx.ledger.audit_key == b"audit-from-secret"


def test_no_hook_without_a_secret(snapstart: list[Callable[[], None]], tmp_path: Path) -> None:
    create_admin_app(Settings(sqlite_path=str(tmp_path / "t.db")))
    create_app(Settings(sqlite_path=str(tmp_path / "t.db")))
    assert snapstart == []
