"""Prometheus text metrics, per process (on Lambda each instance has its own; EMF covers the fleet)."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# the model label is a name clients choose: only a known one (served, or configured) is shown as it is,
# and at most MAX_MODELS distinct (provider, model) labels per process; the rest share these two
OTHER_MODEL = "other"  # a model nobody configured and no upstream answered (an invented name)
OVERFLOW_MODEL = "overflow"  # a known model past the cap
MAX_MODELS = 500


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


class Metrics:
    """Counters and a latency histogram keyed by provider, model and status. Every model label goes
    through ``model_label``, so the series are bounded whatever model names clients send."""

    def __init__(self, max_models: int = MAX_MODELS) -> None:
        self.max_models = max_models
        self._models: set[tuple[str, str]] = set()  # the (provider, model) labels given out so far
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.tokens_in: dict[tuple[str, str], int] = defaultdict(int)
        self.tokens_out: dict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._latency_count: dict[str, int] = defaultdict(int)
        # routing, by provider and upstream model: attempts (ok / failed), retries, fallbacks, cooldowns
        self.attempts: dict[tuple[str, str, str], int] = defaultdict(int)
        self.retries: dict[tuple[str, str], int] = defaultdict(int)
        self.fallbacks: dict[tuple[str, str], int] = defaultdict(int)
        self.cooldowns: dict[tuple[str, str], int] = defaultdict(int)

    def model_label(self, provider: str, model: str, *, known: bool) -> str:
        """``model`` when it is known (an upstream answered it, or the operator configured it) and within
        the cap of distinct labels; else ``other`` (unknown) or ``overflow`` (past the cap)."""
        label = model if known else OTHER_MODEL
        if (provider, label) in self._models:
            return label
        if len(self._models) >= self.max_models:
            return OVERFLOW_MODEL
        self._models.add((provider, label))
        return label

    def attempt_served(self, provider: str, model: str, *, fallback: bool) -> None:
        """An upstream answered: its model is known."""
        model = self.model_label(provider, model, known=True)
        self.attempts[(provider, model, "ok")] += 1
        if fallback:
            self.fallbacks[(provider, model)] += 1

    def attempt_failed(self, provider: str, model: str, *, retried: bool, cooled: bool, known: bool) -> None:
        """A failed attempt; ``retried``: another attempt follows; ``cooled``: it began a cooldown;
        ``known``: the model is configured (else it is labelled ``other``)."""
        model = self.model_label(provider, model, known=known)
        self.attempts[(provider, model, "failed")] += 1
        if retried:
            self.retries[(provider, model)] += 1
        if cooled:
            self.cooldowns[(provider, model)] += 1

    def observe(
        self,
        provider: str,
        model: str,
        status: str,
        latency_s: float,
        tokens_in: int,
        tokens_out: int,
        *,
        known: bool,
    ) -> str:
        """One request; ``known``: its model was served or is configured (else it is labelled ``other``).
        Returns the label it was counted under."""
        model = self.model_label(provider, model, known=known)
        self.requests[(provider, model, status)] += 1
        self.tokens_in[(provider, model)] += tokens_in
        self.tokens_out[(provider, model)] += tokens_out
        buckets = self._buckets.setdefault(provider, [0] * (len(LATENCY_BUCKETS) + 1))
        buckets[bisect_left(LATENCY_BUCKETS, latency_s)] += 1
        self._latency_sum[provider] += latency_s
        self._latency_count[provider] += 1
        return model

    def render(self, in_flight: int) -> str:
        lines = [
            "# HELP tollgate_requests_total Chat requests by provider, model and outcome.",
            "# TYPE tollgate_requests_total counter",
        ]
        for (provider, model, status), count in sorted(self.requests.items()):
            labels = _labels(provider=provider, model=model, status=status)
            lines.append(f"tollgate_requests_total{labels} {count}")
        for name, table, help_text in (
            ("tollgate_tokens_in_total", self.tokens_in, "Prompt tokens by provider and model."),
            ("tollgate_tokens_out_total", self.tokens_out, "Completion tokens by provider and model."),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for (provider, model), count in sorted(table.items()):
                lines.append(f"{name}{_labels(provider=provider, model=model)} {count}")
        lines += self._render_routing()
        lines += self._render_latency()
        lines += [
            "# HELP tollgate_requests_in_flight Requests being served now.",
            "# TYPE tollgate_requests_in_flight gauge",
            f"tollgate_requests_in_flight {in_flight}",
        ]
        return "\n".join(lines) + "\n"

    def _render_routing(self) -> list[str]:
        name = "tollgate_attempts_total"
        lines = [f"# HELP {name} Upstream attempts by provider, model and result.", f"# TYPE {name} counter"]
        for (provider, model, result), count in sorted(self.attempts.items()):
            lines.append(f"{name}{_labels(provider=provider, model=model, result=result)} {count}")
        for name, table, help_text in (
            ("tollgate_retries_total", self.retries, "Failed attempts followed by another attempt."),
            ("tollgate_fallbacks_total", self.fallbacks, "Requests served by a fallback model."),
            ("tollgate_cooldowns_total", self.cooldowns, "Deployments put into cooldown."),
        ):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for (provider, model), count in sorted(table.items()):
                lines.append(f"{name}{_labels(provider=provider, model=model)} {count}")
        return lines

    def _render_latency(self) -> list[str]:
        name = "tollgate_request_duration_seconds"
        lines = [f"# HELP {name} Time from request to last byte, by provider.", f"# TYPE {name} histogram"]
        for provider, buckets in sorted(self._buckets.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"{name}_bucket{_labels(provider=provider, le=le)} {cumulative}")
            lines.append(f"{name}_sum{_labels(provider=provider)} {self._latency_sum[provider]:.6f}")
            lines.append(f"{name}_count{_labels(provider=provider)} {self._latency_count[provider]}")
        return lines
