"""Per-deployment health in this process: consecutive failures, cooldown, half-open probe, in flight,
last error, latency p50.

On Lambda each execution environment learns on its own (the README says so): a deployment that fails
``allowed_failures`` times in a row is skipped for ``cooldown_seconds`` while another deployment of the model
is healthy; then one probe request decides (success closes it, failure cools it down again).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LATENCY_SAMPLES = 64


@dataclass(slots=True)
class DeploymentHealth:
    deployment: str
    consecutive_failures: int = 0
    cooldown_until: float = 0.0  # monotonic; 0: not cooling
    last_failure_at: float = 0.0
    probing: bool = False  # a half-open probe is in flight
    in_flight: int = 0
    last_error: str | None = None
    attempts: int = 0
    failures: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def cooling(self, now: float) -> bool:
        """In cooldown, or past it with its one probe already in flight."""
        return now < self.cooldown_until or (self.cooldown_until > 0 and self.probing)

    def view(self, now: float) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "state": "cooldown" if self.cooling(now) else ("half_open" if self.cooldown_until else "healthy"),
            "consecutive_failures": self.consecutive_failures,
            "cooldown_remaining_seconds": round(max(0.0, self.cooldown_until - now), 3),
            "in_flight": self.in_flight,
            "last_error": self.last_error,
            "attempts": self.attempts,
            "failures": self.failures,
            "latency_p50_ms": round(statistics.median(self.latencies) * 1000, 3) if self.latencies else None,
        }


class HealthBook:
    """Every deployment's health; the router asks it for order and tells it what happened."""

    def __init__(
        self,
        *,
        allowed_failures: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_failures = allowed_failures
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self._health: dict[str, DeploymentHealth] = {}

    def get(self, deployment: str) -> DeploymentHealth:
        health = self._health.get(deployment)
        if health is None:
            health = self._health[deployment] = DeploymentHealth(deployment)
        return health

    def cooling(self, deployment: str) -> bool:
        return self.get(deployment).cooling(self.clock())

    def started(self, deployment: str) -> None:
        """An attempt begins (pair it with ``ended``); past a cooldown, the first attempt is the probe."""
        health = self.get(deployment)
        health.in_flight += 1
        health.attempts += 1
        if health.cooldown_until and self.clock() >= health.cooldown_until:
            health.probing = True

    def succeeded(self, deployment: str, latency: float) -> None:
        """The upstream answered (its first byte): failures are forgotten, a cooldown ends."""
        health = self.get(deployment)
        health.consecutive_failures = 0
        health.cooldown_until = 0.0
        health.probing = False
        health.latencies.append(latency)

    def failed(self, deployment: str, error: str) -> bool:
        """Record a failure; True when it put the deployment into cooldown."""
        health = self.get(deployment)
        now = self.clock()
        health.failures += 1
        health.consecutive_failures += 1
        health.last_error = error
        health.last_failure_at = now
        was_probe, health.probing = health.probing, False
        if was_probe or health.consecutive_failures >= self.allowed_failures:
            health.cooldown_until = now + self.cooldown_seconds
            return True
        return False

    def ended(self, deployment: str) -> None:
        """The attempt is over (answered, failed, or given up by the client)."""
        health = self.get(deployment)
        health.in_flight = max(0, health.in_flight - 1)
        health.probing = False

    def views(self, deployments: list[str]) -> list[dict[str, Any]]:
        now = self.clock()
        return [self.get(d).view(now) for d in deployments]
