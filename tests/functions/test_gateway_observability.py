"""EMF records, Lambda-format logs, and the API Gateway request context forwarded by the Web Adapter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tollgate.api.gateway_context import REQUEST_CONTEXT_HEADER, parse_gateway_context
from tollgate.config import Settings
from tollgate.logs import configure_logging, log_event, reset_logging
from tollgate.observability.emf import RequestMetrics, emf_record, emit

from . import request_context

MESSAGES = [{"role": "user", "content": "secret prompt text"}]


def assert_valid_emf(record: dict[str, Any]) -> None:
    """The EMF specification's rules: every referenced dimension and metric is a root member."""
    meta = record["_aws"]
    assert isinstance(meta["Timestamp"], int)
    for directive in meta["CloudWatchMetrics"]:
        assert directive["Namespace"]
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            assert all(isinstance(record[name], str) for name in dimension_set)
        for metric in directive["Metrics"]:
            assert isinstance(record[metric["Name"]], int | float)


def test_emf_record_shape() -> None:
    metrics = RequestMetrics("r1", "acme", "openai", "gpt-4o-mini", "ok", 12.5, 11, 7, cost_micro_usd=1234)
    record = emf_record("tollgate", metrics, at_ms=1_700_000_000_000)
    assert_valid_emf(record)
    [requests, by_model] = record["_aws"]["CloudWatchMetrics"]
    assert requests["Dimensions"] == [["provider", "model", "status"], ["provider", "model"]]
    assert requests["Metrics"] == [{"Name": "requests", "Unit": "Count"}]
    assert {m["Name"] for m in by_model["Metrics"]} == {
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "cost_usd",
    }
    assert record["cost_usd"] == 0.001234 and record["requests"] == 1 and record["tenant"] == "acme"


def test_emf_without_cost_or_route() -> None:
    record = emf_record("ns", RequestMetrics("r2", None, None, None, "invalid_api_key", 1.0, 0, 0))
    assert_valid_emf(record)
    assert "cost_usd" not in record and record["provider"] == record["model"] == "unknown"


def test_emit_writes_one_flushed_line() -> None:
    out = io.StringIO()
    emit("ns", RequestMetrics("r3", "t", "openai", "m", "ok", 1.0, 1, 1), out)
    [line] = out.getvalue().splitlines()
    assert_valid_emf(json.loads(line))


@pytest.fixture
def gateway(
    fake_openai: FakeOpenAI, start_gateway: Callable[..., ServerThread]
) -> Callable[..., ServerThread]:
    def start(**kwargs: Any) -> ServerThread:
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream-secret",
            openai_base_url=f"{fake_openai.url}/v1",
            emf_metrics=True,
            metrics_namespace="tollgate-test",
            pricing_file=None,
        )
        return start_gateway(settings, **kwargs)

    return start


def emf_lines(text: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [r for r in records if "_aws" in r]


def test_one_emf_record_per_request(
    gateway: Callable[..., ServerThread], capsys: pytest.CaptureFixture[str]
) -> None:
    server = gateway()
    httpx.post(f"{server.url}/v1/chat/completions", json={"messages": MESSAGES}).raise_for_status()
    body = {"messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as response:
        response.read()
    out = capsys.readouterr().out
    records = emf_lines(out)
    assert len(records) == 2 and "secret prompt text" not in out
    for record in records:
        assert_valid_emf(record)
        assert (
            record["provider"] == "openai" and record["model"] == "gpt-4o-mini" and record["status"] == "ok"
        )
        assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "tollgate-test"
    assert records[0]["prompt_tokens"] > 0 and records[0]["completion_tokens"] > 0


def test_an_emf_record_names_no_model_nobody_served(
    gateway: Callable[..., ServerThread], fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model is a CloudWatch dimension: an invented name that failed upstream is ``other``."""
    server = gateway()
    fake_openai.script = Script(status=503)
    body = {"model": "openai/invented-xyz", "messages": MESSAGES}
    assert httpx.post(f"{server.url}/v1/chat/completions", json=body).status_code == 503
    (record,) = emf_lines(capsys.readouterr().out)
    assert (
        record["model"] == "other" and record["provider"] == "openai" and "invented" not in json.dumps(record)
    )


def _forwarded(request_id: str, tenant: str | None = None) -> dict[str, str]:
    extra = {"authorizer": {"tenant": tenant, "key_id": "key_x", "principalId": "key_x"}} if tenant else {}
    context = request_context("/v1/chat/completions", "POST", request_id, **extra)
    return {REQUEST_CONTEXT_HEADER: json.dumps(context)}


def test_api_gateway_request_id_becomes_tollgates(
    gateway: Callable[..., ServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    server = gateway(trust_gateway_context=True)
    request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    with caplog.at_level(logging.WARNING, logger="tollgate"):
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"messages": MESSAGES},
            headers=_forwarded(request_id, tenant="someone-else"),
        )
    assert response.status_code == 200
    assert response.headers["x-tollgate-request-id"] == request_id
    assert "edge_tenant_mismatch" in caplog.text and "someone-else" in caplog.text


def test_the_header_is_ignored_off_lambda(gateway: Callable[..., ServerThread]) -> None:
    server = gateway()  # not on Lambda: a client could forge the header
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": MESSAGES},
        headers=_forwarded("forged-request-1"),
    )
    assert response.status_code == 200 and response.headers["x-tollgate-request-id"] != "forged-request-1"


@pytest.mark.parametrize(
    "raw",
    [None, "", "not json", "[]", '{"requestId": 5}', '{"requestId": "a b"}', "[" * 5000, '{"a": 1e400}'],
)
def test_malformed_context_is_ignored(raw: str | None) -> None:
    assert parse_gateway_context(raw).request_id is None


@pytest.fixture
def lambda_logging() -> Iterator[io.StringIO]:
    reset_logging()
    configure_logging("INFO", lambda_json=True)
    stream = io.StringIO()
    [handler] = logging.getLogger("tollgate").handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    reset_logging()


def test_lambda_log_lines_are_powertools_json(lambda_logging: io.StringIO) -> None:
    logger = logging.getLogger("tollgate.request")
    log_event(logger, logging.INFO, "request", request_id="r1", tenant="acme", message="m", name="n")
    [line] = lambda_logging.getvalue().splitlines()
    record = json.loads(line)
    assert record["service"] == "tollgate" and record["level"] == "INFO" and record["message"] == "request"
    assert record["request_id"] == "r1" and record["tenant"] == "acme"
    assert record["message_"] == "m" and record["name_"] == "n"  # reserved names kept, renamed
    assert record["location"].startswith("test_lambda_log_lines_are_powertools_json:")  # the caller
