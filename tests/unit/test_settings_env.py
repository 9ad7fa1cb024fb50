"""Settings read from the environment without pydantic-settings (config.FromEnvironment): which value each
field gets, and the one-line error that names the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tollgate.config import Settings
from tollgate.config_errors import describe_settings_error, is_settings_error


def test_defaults_are_validated_and_canonical() -> None:
    settings = Settings()
    assert settings.store == "sqlite" and settings.default_max_tokens == 1024
    assert settings.default_provider == "llama_cpp"
    assert settings.aws_region == settings.bedrock_region == "us-east-1"


def test_each_field_reads_its_own_first_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert Settings().bedrock_region == "eu-west-1" == Settings().aws_region  # the shared fallback
    monkeypatch.setenv("BEDROCK_REGION", "us-west-2")
    settings = Settings()
    assert settings.bedrock_region == "us-west-2" and settings.aws_region == "eu-west-1"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-anthropic")
    assert Settings().claude_api_key.get_secret_value() == "from-anthropic"  # type: ignore[union-attr]
    monkeypatch.setenv("CLAUDE_API_KEY", "from-claude")
    assert Settings().claude_api_key.get_secret_value() == "from-claude"  # type: ignore[union-attr]


def test_names_match_without_regard_to_case_and_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("tollgate_store", "dynamodb")
    monkeypatch.setenv("TOLLGATE_EMF_METRICS", "yes")
    monkeypatch.setenv("TOLLGATE_MAX_CONNECTIONS", "12")
    monkeypatch.setenv("TOLLGATE_INTERNAL_SECRET_VALUES", '{"MY_KEY": "v"}')
    settings = Settings()
    assert settings.store == "dynamodb" and settings.emf_metrics is True and settings.max_connections == 12
    assert settings.variable("MY_KEY").get_secret_value() == "v"  # type: ignore[union-attr]


def test_constructor_values_win_by_variable_or_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLGATE_STORE", "dynamodb")
    monkeypatch.setenv("OPENAI_API_KEY", "env")
    assert Settings(store="sqlite").store == "sqlite"
    assert Settings(TOLLGATE_STORE="sqlite").store == "sqlite"
    assert Settings(OPENAI_API_KEY="init").openai_api_key.get_secret_value() == "init"  # type: ignore[union-attr]
    assert Settings(UNKNOWN="x").store == "dynamodb"  # unknown names are ignored


def _error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert is_settings_error(raised.value)
    return describe_settings_error(raised.value)


def test_invalid_values_name_their_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, TOLLGATE_DEFAULT_MAX_TOKENS="abc", TOLLGATE_MAX_BODY_BYTES="10")
    assert message == (
        "invalid setting TOLLGATE_DEFAULT_MAX_TOKENS=abc: must be an integer; "
        "invalid setting TOLLGATE_MAX_BODY_BYTES=10: must be >= 1024"
    )
    monkeypatch.delenv("TOLLGATE_DEFAULT_MAX_TOKENS")
    monkeypatch.delenv("TOLLGATE_MAX_BODY_BYTES")
    empty = _error(monkeypatch, OPENAI_MAX_TOKENS="")
    assert empty == "invalid setting OPENAI_MAX_TOKENS=: must be an integer"
    monkeypatch.delenv("OPENAI_MAX_TOKENS")
    assert _error(monkeypatch, TOLLGATE_STORE="mysql") == (
        "invalid setting TOLLGATE_STORE=mysql: must be 'sqlite' or 'dynamodb'"
    )
    monkeypatch.delenv("TOLLGATE_STORE")
    secret = _error(monkeypatch, TOLLGATE_INTERNAL_SECRET_VALUES="not json")
    assert secret.startswith("invalid setting TOLLGATE_INTERNAL_SECRET_VALUES=***: ")


def test_settings_do_not_import_pydantic_settings() -> None:
    code = (
        "import sys; from tollgate.config import Settings; Settings(); "
        "print('pydantic_settings' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
