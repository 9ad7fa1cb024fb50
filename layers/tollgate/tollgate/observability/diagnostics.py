"""Provider health and a ring of recent requests, for GET /diagnostics/* (never prompts or secrets)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from ..config import ProviderConfig


@dataclass(slots=True)
class ProviderHealth:
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    last_latency_ms: float | None = None


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


class Diagnostics:
    def __init__(self, configs: dict[str, ProviderConfig], recent: int) -> None:
        self._configs = configs
        self.health: dict[str, ProviderHealth] = {name: ProviderHealth() for name in configs}
        self.recent: deque[RequestSummary] = deque(maxlen=recent)

    def record(self, summary: RequestSummary, *, provider_failed: bool) -> None:
        self.recent.append(summary)
        health = self.health.get(summary.provider or "")
        if health is None:
            return
        if provider_failed:
            health.consecutive_failures += 1
            health.last_error = summary.error
            health.last_error_at = summary.at
        elif summary.status == "ok":
            health.consecutive_failures = 0
            health.last_success_at = summary.at
            health.last_latency_ms = summary.latency_ms

    def providers(self) -> list[dict[str, Any]]:
        return [
            {
                "provider": name,
                "configured": config.configured,
                "base_url": config.base_url or None,
                "region": config.region,
                "default_model": config.model,
                **asdict(self.health[name]),
            }
            for name, config in self._configs.items()
        ]

    def requests(self) -> dict[str, list[dict[str, Any]]]:
        entries = [asdict(summary) for summary in reversed(self.recent)]
        return {
            "successes": [e for e in entries if e["status"] == "ok"],
            "failures": [e for e in entries if e["status"] != "ok"],
        }
