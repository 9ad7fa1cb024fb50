"""A clock a test moves by hand: what the gateway, the sweep, the limits and the alerts are given as their
``timeutil.Clock`` (no environment switch in production code)."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
