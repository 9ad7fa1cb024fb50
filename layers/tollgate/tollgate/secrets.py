"""Settings on AWS: the environment overlaid with one Secrets Manager secret, refreshed after a restore.

The secret named by ``TOLLGATE_SECRET_ARN`` is a JSON object keyed by the same names as the environment
variables (``OPENAI_API_KEY``, ``CLAUDE_API_KEY``, ``TOLLGATE_ADMIN_KEY``, ``TOLLGATE_AUDIT_KEY``,
``LLAMA_CPP_API_KEY``, …); its values win over the environment. It is read with powertools Parameters
(cached for ``SECRET_MAX_AGE_SECONDS``), imported only when a secret is configured: import time is cold-start
time.

SnapStart: a function initialised with SnapStart carries the secret values of its snapshot into every
restored sandbox, however old. ``refresh_after_restore`` registers a hook (``snapshot_restore_py``, present
in the Lambda Python runtime; absent locally, where it is a no-op) that fetches the secret again and swaps
the new values into the live ``AppContext`` (``refresh_context``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .config import Settings
from .logs import log_event

if TYPE_CHECKING:
    from .context import AppContext

__all__ = [
    "SECRET_MAX_AGE_SECONDS",
    "fetch_secret",
    "known_names",
    "load_settings",
    "refresh_after_restore",
    "refresh_context",
    "register_after_restore",
    "settings_from_secret",
]

logger = logging.getLogger("tollgate.secrets")

SECRET_MAX_AGE_SECONDS = 300


def known_names() -> frozenset[str]:
    """Every name a secret key may use: each setting's environment variables and its field name."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        names.add(field_name)
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices is not None:
            names.update(choice for choice in choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
    return frozenset(names)


def fetch_secret(arn: str, *, force_fetch: bool = False) -> dict[str, Any]:
    """The secret's JSON object (powertools caches it; ``force_fetch`` bypasses the cache)."""
    from aws_lambda_powertools.utilities import parameters  # lazily: ~100 ms of imports

    value = parameters.get_secret(
        arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS, force_fetch=force_fetch
    )
    if not isinstance(value, dict):
        raise ValueError("the secret named by TOLLGATE_SECRET_ARN must be a JSON object")
    return value


def settings_from_secret(values: Mapping[str, Any]) -> Settings:
    """The environment's settings with the secret's values on top; unknown keys are warned about, by name."""
    known = known_names()
    overrides: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for name, value in values.items():
        if name in known:
            overrides[name] = value
        else:  # not a setting: only a routing deployment's api_key_env may use it
            extras[name] = value
            log_event(logger, logging.WARNING, "secret_key_not_a_setting", key=name)  # never the value
    return Settings(**overrides, secret_values=extras)


def load_settings(*, force_fetch: bool = False) -> Settings:
    """``Settings()``, overlaid with the secret when ``TOLLGATE_SECRET_ARN`` is set."""
    settings = Settings()
    if not settings.secret_arn:
        return settings
    return settings_from_secret(fetch_secret(settings.secret_arn, force_fetch=force_fetch))


def refresh_context(ctx: AppContext, settings: Settings) -> None:
    """Swap ``settings`` into a live context: what derives from secrets is rebuilt, nothing else.

    Rebuilt: the router's deployments (their keys; health stays), the HTTP adapters (their auth headers),
    the ledger's audit key, the alert channels; the admin key is read from ``ctx.settings`` per request.
    The store, the HTTP client and the Bedrock adapter stay (a changed table or region needs a redeploy).
    """
    from .alerts.build import refreshed_alerts
    from .providers.registry import build_providers

    ctx.settings = settings
    ctx.router.refresh(settings)
    ctx.ledger.audit_key = settings.audit_hmac_key()
    ctx.alerts = ctx.ledger.alerts = refreshed_alerts(ctx.alerts, settings, ctx.store)
    ctx.sweeper.outbox = ctx.alerts.outbox if ctx.alerts else None
    if ctx.http is not None and ctx.providers:
        fresh = build_providers(settings, ctx.http, bedrock_client=None, deployments=ctx.router.deployments)
        fresh["bedrock"] = ctx.providers.get("bedrock", fresh["bedrock"])
        ctx.providers = fresh


def register_after_restore(hook: Callable[[], None]) -> bool:
    """Register ``hook`` with the Lambda runtime's SnapStart hooks; False where there are none (locally)."""
    try:
        from snapshot_restore_py import register_after_restore as register  # type: ignore[import-not-found]
    except ImportError:
        return False
    register(hook)
    return True


def refresh_after_restore(ctx: AppContext) -> bool:
    """After a SnapStart restore, fetch the secret again and refresh ``ctx`` (only when a secret is used)."""
    if not ctx.settings.secret_arn:
        return False

    def refresh() -> None:
        try:
            refresh_context(ctx, load_settings(force_fetch=True))
        except Exception as exc:  # keep serving with the snapshot's values rather than fail the restore
            log_event(logger, logging.ERROR, "secret_refresh_failed", error=type(exc).__name__)
            return
        log_event(logger, logging.INFO, "secret_refreshed")

    return register_after_restore(refresh)
