"""Scheduled idle check for the llama.cpp GPU service (EventBridge, every 5 minutes).

When the service has had no use for ``LLAMA_CPP_IDLE_MINUTES`` it sets ``desiredCount`` to 0; the capacity
provider then drains and terminates the GPU instance. Idempotent: a stopped service is left alone.

"Last used" is the service tag ``tollgate:last-used`` (epoch seconds) that the gateway writes when it wakes
the service and at most once a minute while serving (``tollgate.providers.llama_wake``). Without the tag
(the service was started by hand) the newest deployment's update time stands in for it.

Self-contained (boto3 from the Lambda runtime, no tollgate layer); one JSON log line per run.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from typing import Any

LAST_USED_TAG = "tollgate:last-used"  # the same name as tollgate.providers.llama_wake.LAST_USED_TAG

_client: Any = None


def last_used(service: dict[str, Any]) -> float | None:
    """Epoch seconds of the last use: the tag, else the newest deployment's update (or creation) time."""
    for tag in service.get("tags") or []:
        if tag.get("key") == LAST_USED_TAG:
            try:
                return float(tag["value"])
            except (TypeError, ValueError):
                break
    stamps = [
        stamp.timestamp()
        for deployment in service.get("deployments") or []
        for stamp in (deployment.get("updatedAt"), deployment.get("createdAt"))
        if isinstance(stamp, datetime)
    ]
    return max(stamps, default=None)


def check(client: Any, cluster: str, service_name: str, idle_minutes: int, now: float) -> dict[str, Any]:
    """Scale the service to 0 when it is idle; return what was decided (the log line)."""
    found = client.describe_services(cluster=cluster, services=[service_name], include=["TAGS"])["services"]
    result: dict[str, Any] = {"event": "llama_cpp_idle_check", "cluster": cluster, "service": service_name}
    if not found:
        return result | {"action": "none", "reason": "service_not_found"}
    service = found[0]
    if service.get("desiredCount", 0) == 0:
        return result | {"action": "none", "reason": "already_stopped"}
    used = last_used(service)
    idle_seconds = None if used is None else max(0.0, now - used)
    result |= {"idle_seconds": None if idle_seconds is None else round(idle_seconds)}
    if idle_seconds is not None and idle_seconds < idle_minutes * 60:
        return result | {"action": "none", "reason": "in_use"}
    client.update_service(cluster=cluster, service=service_name, desiredCount=0)
    return result | {"action": "scaled_to_zero", "reason": "idle"}


def _ecs() -> Any:
    global _client
    if _client is None:
        import boto3

        _client = boto3.client("ecs")
    return _client


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = check(
        _ecs(),
        os.environ["LLAMA_CPP_ECS_CLUSTER"],
        os.environ["LLAMA_CPP_ECS_SERVICE"],
        int(os.environ.get("LLAMA_CPP_IDLE_MINUTES", "30")),
        time.time(),
    )
    print(json.dumps(result, sort_keys=True))
    return result
