"""CloudWatch Embedded Metric Format: one JSON line per request, written to stdout and flushed at once.

EMF is a log line with an ``_aws.CloudWatchMetrics`` directive; CloudWatch Logs turns it into metrics. It is
written by hand (``msgspec``, already loaded) rather than with powertools ``Metrics`` (~50 ms of imports on
the chat function's cold start, and a flush that needs a Python handler, which the Lambda Web Adapter does
not run). Enabled by ``TOLLGATE_EMF_METRICS``; namespace ``TOLLGATE_METRICS_NAMESPACE``.

Metrics: ``requests`` (Count) by provider, model and status, and by provider and model; ``prompt_tokens``,
``completion_tokens`` (Count), ``latency_ms`` (Milliseconds) and ``cost_usd`` (None; only when priced) by
provider and model. ``request_id`` and ``tenant`` ride along as properties (searchable, not dimensions).
The model is the bounded metrics label (``Metrics.model_label``): ``other`` for a name nobody served.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import IO, Any

import msgspec

__all__ = ["RequestMetrics", "emf_record", "emit"]

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    request_id: str
    tenant: str | None
    provider: str | None
    model: str | None
    status: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_micro_usd: int | None = None


def _metric(name: str, unit: str) -> dict[str, str]:
    return {"Name": name, "Unit": unit}


def emf_record(namespace: str, metrics: RequestMetrics, *, at_ms: int | None = None) -> dict[str, Any]:
    """The EMF object for one request (pure; ``emit`` writes it)."""
    by_model = [
        _metric("prompt_tokens", "Count"),
        _metric("completion_tokens", "Count"),
        _metric("latency_ms", "Milliseconds"),
    ]
    record: dict[str, Any] = {
        "provider": metrics.provider or UNKNOWN,
        "model": metrics.model or UNKNOWN,
        "status": metrics.status,
        "requests": 1,
        "prompt_tokens": metrics.prompt_tokens,
        "completion_tokens": metrics.completion_tokens,
        "latency_ms": metrics.latency_ms,
        "request_id": metrics.request_id,
        "tenant": metrics.tenant,
    }
    if metrics.cost_micro_usd is not None:
        record["cost_usd"] = metrics.cost_micro_usd / 1_000_000
        by_model.append(_metric("cost_usd", "None"))
    record["_aws"] = {
        "Timestamp": at_ms if at_ms is not None else int(time.time() * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [["provider", "model", "status"], ["provider", "model"]],
                "Metrics": [_metric("requests", "Count")],
            },
            {"Namespace": namespace, "Dimensions": [["provider", "model"]], "Metrics": by_model},
        ],
    }
    return record


def emit(namespace: str, metrics: RequestMetrics, stream: IO[str] | None = None) -> None:
    """Write one EMF line and flush it (stdout is a pipe on Lambda: block-buffered otherwise)."""
    out = stream if stream is not None else sys.stdout
    out.write(msgspec.json.encode(emf_record(namespace, metrics)).decode() + "\n")
    out.flush()
