"""Deployment health and a ring of recent requests, for GET /diagnostics/* (never prompts or secrets)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..engine.route import Router


@dataclass(frozen=True, slots=True)
class RequestSummary:
    request_id: str
    at: float
    provider: str | None
    model: str | None
    status: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    stream: bool
    error: str | None = None


def public_url(url: str) -> str | None:
    """A base URL without user info, query or fragment (where a key could hide)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Diagnostics:
    def __init__(self, router: Router, recent: int) -> None:
        self.router = router
        self.recent: deque[RequestSummary] = deque(maxlen=recent)

    def record(self, summary: RequestSummary) -> None:
        self.recent.append(summary)

    def providers(self) -> list[dict[str, Any]]:
        """Every deployment (each provider's own first), its configuration and its health in this process."""
        router = self.router
        deployments = list(router.deployments.values())
        health = router.health.views([d.id for d in deployments])
        return [
            {
                "provider": d.provider,
                "configured": d.config.configured,
                "base_url": public_url(d.config.base_url),
                "region": d.config.region,
                "default_model": d.config.model,
                **view,
            }
            for d, view in zip(deployments, health, strict=True)
        ]

    def requests(self) -> dict[str, list[dict[str, Any]]]:
        entries = [asdict(summary) for summary in reversed(self.recent)]
        return {
            "successes": [e for e in entries if e["status"] == "ok"],
            "failures": [e for e in entries if e["status"] != "ok"],
        }
