"""Where alert webhooks may go: https anywhere; plain http only to a loopback host (a local receiver) or,
with ``TOLLGATE_ALERT_WEBHOOK_ALLOW_HTTP``, anywhere (tests, a private network). The URL comes from the
settings only, never from a request."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, *, allow_http: bool) -> None:
    """ValueError (one line, without the URL: it may be a credential) unless the URL may be used."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL")
    if parts.scheme == "http" and not (allow_http or _loopback(parts.hostname)):
        raise ValueError(
            "must be https:// (plain http only to 127.0.0.1/localhost, or with "
            "TOLLGATE_ALERT_WEBHOOK_ALLOW_HTTP=1)"
        )
