"""Alerts from the settings: the channels that are configured, their outbox and the watch (None when no
channel is: then nothing is recorded and requests pay nothing)."""

from __future__ import annotations

from typing import Any

import httpx

from ..aws import LazyClient
from ..config import Settings
from ..store.alert_base import AlertStore
from ..timeutil import Clock, utc_now
from .channels import Channel, EventBridgeChannel, WebhookChannel
from .outbox import Outbox
from .watch import AlertWatch


def build_channels(
    settings: Settings,
    *,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    events_client: Any | None = None,
) -> list[Channel]:
    channels: list[Channel] = []
    if settings.alert_webhook_url is not None:
        secret = settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else ""
        channels.append(
            WebhookChannel(
                settings.alert_webhook_url.get_secret_value(),
                secret=secret.encode() or None,
                timeout_seconds=settings.alert_webhook_timeout_seconds,
                transport=webhook_transport,
            )
        )
    if settings.alert_eventbridge:
        client = LazyClient(  # short timeouts: a stuck PutEvents must not hold the outbox (or a shutdown)
            "events",
            region=settings.aws_region,
            client=events_client,
            connect_timeout=3,
            read_timeout=5,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        channels.append(EventBridgeChannel(client))
    return channels


def build_alerts(
    settings: Settings,
    store: AlertStore,
    *,
    clock: Clock = utc_now,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    events_client: Any | None = None,
) -> AlertWatch | None:
    channels = build_channels(settings, webhook_transport=webhook_transport, events_client=events_client)
    if not channels:
        return None
    outbox = Outbox(
        store,
        channels,
        max_attempts=settings.alert_max_attempts,
        retry_after_seconds=settings.alert_retry_after_seconds,
        clock=clock,
    )
    return AlertWatch(store, outbox, clock)


def refreshed_alerts(current: AlertWatch | None, settings: Settings, store: AlertStore) -> AlertWatch | None:
    """After the secret changed (the webhook URL and its signing secret may live there): the same watch
    with fresh channels, a new one if there was none, None when no channel is left."""
    channels = build_channels(settings)
    if current is None or not channels:
        return build_alerts(settings, store) if channels else None
    current.outbox.channels = tuple(channels)
    return current
