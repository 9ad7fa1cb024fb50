"""Which deployment serves the next attempt: healthy ones first (weighted or least busy), cooling ones only
when no deployment of that model is healthy, then the fallbacks in order; passes repeat while retries remain.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .health import HealthBook

Strategy = Literal["weighted", "least-busy"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One deployment with the upstream model it would be asked for."""

    deployment: str  # the deployment's id (health key, audit, headers)
    provider: str  # canonical provider
    model: str  # upstream model id
    weight: float = 1.0
    public_name: str | None = None  # the config's model name this candidate serves, if any


class AttemptPlan:
    """Hands out candidates one attempt at a time (health is read at each step, so a deployment that
    failed a moment ago in another request is already avoided)."""

    def __init__(
        self,
        groups: Sequence[Sequence[Candidate]],
        health: HealthBook,
        *,
        strategy: Strategy = "weighted",
        rng: random.Random | None = None,
    ) -> None:
        if not groups or not all(groups):
            raise ValueError("an attempt plan needs at least one candidate in every group")
        self.groups = [list(g) for g in groups]
        self.health = health
        self.strategy = strategy
        self.rng = rng or random.Random()  # noqa: S311 - load spreading, not security
        self._tried: set[str] = set()

    def next(self) -> Candidate:
        for group in self.groups:
            pick = self._pick([c for c in group if c.deployment not in self._tried])
            if pick is not None:
                self._tried.add(pick.deployment)
                return pick
        self._tried.clear()  # every candidate had its turn: the next pass starts over
        return self.next()

    def _pick(self, untried: list[Candidate]) -> Candidate | None:
        if not untried:
            return None
        healthy = [c for c in untried if not self.health.cooling(c.deployment)]
        if healthy:
            return self._choose(healthy)
        if any(not self.health.cooling(c.deployment) for c in self._group_of(untried[0])):
            return None  # a healthy deployment of this model was already tried: skip the cooling ones
        return min(untried, key=lambda c: self.health.get(c.deployment).last_failure_at)

    def _group_of(self, candidate: Candidate) -> list[Candidate]:
        return next(g for g in self.groups if candidate in g)

    def _choose(self, healthy: list[Candidate]) -> Candidate:
        if self.strategy == "least-busy":
            fewest = min(self.health.get(c.deployment).in_flight for c in healthy)
            healthy = [c for c in healthy if self.health.get(c.deployment).in_flight == fewest]
            return self.rng.choice(healthy)
        return self.rng.choices(healthy, weights=[c.weight for c in healthy], k=1)[0]


class OnlyPlan:
    """The plan of a route with one candidate: every attempt goes to it (what ``AttemptPlan`` would pick,
    healthy or cooling), without the per-attempt filtering."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate

    def next(self) -> Candidate:
        return self.candidate


def plan_for(
    groups: Sequence[Sequence[Candidate]],
    health: HealthBook,
    *,
    strategy: Strategy = "weighted",
    rng: random.Random | None = None,
) -> AttemptPlan | OnlyPlan:
    if len(groups) == 1 and len(groups[0]) == 1:
        return OnlyPlan(groups[0][0])
    return AttemptPlan(groups, health, strategy=strategy, rng=rng)
