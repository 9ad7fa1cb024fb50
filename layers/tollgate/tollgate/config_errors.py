"""An invalid setting as one line that names its environment variable and what it must be.

``tollgate: invalid setting TOLLGATE_DEFAULT_MAX_TOKENS=0: must be >= 1`` instead of pydantic's
traceback: the CLI prints it and exits 2; ``create_app`` raises it as ``SettingsError``.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic_core import ErrorDetails

from .config import Settings
from .names import printable

_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_KINDS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be a boolean (1/0, true/false)",
    "string_too_short": "must not be empty",
}


class SettingsError(ValueError):
    """The settings could not be read; the message is the one line to show."""


def is_settings_error(exc: BaseException) -> bool:
    return isinstance(exc, ValidationError) and exc.title == Settings.__name__


def _variable(loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """The environment variable of an error's field, and whether its value is a secret."""
    name = str(loc[0]) if loc else "?"
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if name == field_name or name in choices:
            secret = "SecretStr" in str(info.annotation) or info.annotation is SecretStr
            return (name if name in choices else (choices[0] if choices else name.upper())), secret
    return name, False


def _reason(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUNDS[kind]} {f'{bound:g}' if isinstance(bound, float) else bound}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '?')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return _KINDS.get(kind, error["msg"][:1].lower() + error["msg"][1:])


def _value(raw: Any, secret: bool) -> str:
    if secret:
        return "***"
    text = printable(raw if isinstance(raw, str) else repr(raw))
    return text if len(text) <= 80 else text[:77] + "..."


def describe_settings_error(exc: ValidationError) -> str:
    """Every invalid setting on one line: ``invalid setting VAR=value: must be >= 1; ...``."""
    parts = []
    for error in exc.errors():
        variable, secret = _variable(error["loc"])
        parts.append(f"invalid setting {variable}={_value(error.get('input'), secret)}: {_reason(error)}")
    return "; ".join(parts)
