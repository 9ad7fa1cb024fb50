"""Whatever a client sends gets a 4xx that says what is wrong, never a 500 (README "Input limits").

Over real sockets: a gateway with a SQLite store, an admin key and a tenant key, on a fake OpenAI upstream.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.backend_dynamodb import REGION, backend
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_server import FakeBedrock
from tests.fakes.openai_upstream import FakeOpenAI, Script
from tests.fakes.server import ServerThread
from tests.integration.state_helpers import ADMIN_KEY, MESSAGES, Gateway
from tollgate.api.headers import header_value
from tollgate.app import create_app
from tollgate.config import Settings
from tollgate.json_depth import MAX_JSON_DEPTH
from tollgate.schemas import limits
from tollgate.store.dynamodb import DynamoDBStore
from tollgate.store.sqlite import SQLiteStore

BIG = 2**64 + 1  # past every 64-bit integer type
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}
ANTHROPIC = {"max_tokens": 5, "messages": MESSAGES}


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def claude_url() -> Iterator[str]:
    with ServerThread(FakeAnthropic()) as server:
        yield f"{server.url}/v1"


@pytest.fixture
def gw(
    fake_openai: FakeOpenAI,
    bedrock: FakeBedrock,
    claude_url: str,
    start_gateway: Callable[..., ServerThread],
    tmp_path: Path,
) -> Gateway:
    settings = Settings(
        default_provider="openai",
        openai_api_key="sk-upstream",
        openai_base_url=f"{fake_openai.url}/v1",
        claude_api_key="sk-upstream",
        claude_base_url=claude_url,
        bedrock_model="us.amazon.nova-lite-v1:0",
        admin_key=ADMIN_KEY,
        default_max_tokens=50,
    )
    server = start_gateway(settings, include_admin=True, store=SQLiteStore(str(tmp_path / "input.db")))
    return Gateway(server, fake_openai)


@pytest.fixture
def key(gw: Gateway) -> str:
    return gw.new_key("acme")


def send(
    gw: Gateway, key: str, path: str, body: Any = None, *, content: bytes | None = None
) -> httpx.Response:
    """POST (PUT for budgets) with the key the route takes: the admin key under /admin."""
    token = ADMIN_KEY if path.startswith("/admin") else key
    method = "PUT" if path.startswith("/admin/budgets") else "POST"
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return httpx.request(method, f"{gw.url}{path}", json=body, content=content, headers=headers, timeout=20)


def assert_400(response: httpx.Response, param: str | None = None, says: str = "") -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    assert error["type"] == "invalid_request_error"
    if body.get("type") != "error":  # /v1/messages answers in Anthropic's shape, without param
        assert error["param"] == param
    message = str(error["message"])
    if param:
        assert param in message
    assert says in message
    return message


# (path, body without the field, field, largest accepted value)
RANGES = [
    ("/v1/chat/completions", CHAT, "max_tokens", limits.MAX_OUTPUT_TOKENS),
    ("/v1/chat/completions", CHAT, "max_completion_tokens", limits.MAX_OUTPUT_TOKENS),
    ("/v1/completions", {"prompt": "hi"}, "max_tokens", limits.MAX_OUTPUT_TOKENS),
    ("/v1/messages", {"messages": MESSAGES}, "max_tokens", limits.MAX_OUTPUT_TOKENS),
    ("/v1/messages/count_tokens", {"messages": MESSAGES}, "max_tokens", limits.MAX_OUTPUT_TOKENS),
    ("/v1/embeddings", {"input": "hi"}, "dimensions", limits.MAX_EMBEDDING_DIMENSIONS),
    ("/v1/tokens/check", {}, "tokens", limits.MAX_POOL_TOKENS),
    ("/v1/tokens/reserve", {"pool": "big"}, "tokens", limits.MAX_POOL_TOKENS),
    ("/v1/tokens/report", {"pool": "nothing", "actual": 0}, "reserved", limits.MAX_POOL_TOKENS),
    ("/admin/keys", {"tenant": "acme"}, "expires_in", limits.MAX_EXPIRES_IN_SECONDS),
    ("/admin/budgets/acme/big", {}, "tokens", limits.MAX_BUDGET_TOKENS),
]


@pytest.mark.parametrize(("path", "body", "field", "top"), RANGES, ids=[f"{r[0]}:{r[2]}" for r in RANGES])
def test_every_number_has_a_range_and_a_400_names_the_field(
    gw: Gateway, key: str, path: str, body: dict[str, Any], field: str, top: int
) -> None:
    for bad in (BIG, -BIG, top + 1):
        assert_400(
            send(gw, key, path, body | {field: bad}), field, "less than" if bad > 0 else "greater than"
        )
    accepted = send(gw, key, path, body | {field: top})  # the documented top itself is fine
    assert accepted.status_code != 400 or "nothing" in accepted.text, accepted.text
    assert accepted.status_code < 500, accepted.text


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"after_seq": str(BIG)}, "after_seq"),
        ({"after_seq": str(limits.MAX_AUDIT_SEQ + 1)}, "after_seq"),
        ({"after_seq": "-1"}, "after_seq"),
        ({"after_seq": "x"}, "after_seq"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": str(BIG)}, "limit"),
    ],
)
def test_audit_query_numbers_are_bounded(gw: Gateway, key: str, params: dict[str, str], param: str) -> None:
    response = httpx.get(f"{gw.url}/v1/audit", params=params, headers={"x-api-key": key}, timeout=20)
    assert_400(response, param, "query parameter")


@pytest.mark.parametrize("older_than", [limits.MAX_SWEEP_AGE_SECONDS + 1, 10**11, 10**23 - 1, BIG])
def test_sweep_older_than_is_bounded(gw: Gateway, older_than: int) -> None:
    """Found by a hostile review: an age past what the clock can subtract was an OverflowError (a 500)."""
    response = gw.admin("POST", "/sweep", params={"older_than": str(older_than)})
    assert_400(response, "older_than", "query parameter")


def test_sweep_older_than_at_its_bound_is_served(gw: Gateway) -> None:
    response = gw.admin("POST", "/sweep", params={"older_than": str(limits.MAX_SWEEP_AGE_SECONDS)})
    assert response.status_code == 200, response.text
    assert response.json()["reservations_swept"] == 0


def test_audit_query_at_its_bounds_is_served(gw: Gateway, key: str) -> None:
    params = {"segment": "", "after_seq": str(limits.MAX_AUDIT_SEQ), "limit": "1000"}
    response = httpx.get(f"{gw.url}/v1/audit", params=params, headers={"x-api-key": key}, timeout=20)
    assert response.status_code == 200, response.text
    assert response.json()["entries"] == []


@pytest.mark.parametrize(
    ("path", "body", "field", "value"),
    [
        ("/v1/chat/completions", CHAT, "max_tokens", "10"),
        ("/v1/chat/completions", CHAT, "max_tokens", 10.0),
        ("/v1/chat/completions", CHAT, "max_tokens", True),
        ("/v1/chat/completions", CHAT, "stream", "yes"),
        ("/v1/chat/completions", CHAT, "stream", 1),
        ("/v1/chat/completions", CHAT, "n", "1"),
        ("/v1/chat/completions", CHAT, "temperature", "1"),
        ("/v1/chat/completions", CHAT, "loop_max_turns", 2.0),
        ("/v1/completions", {"prompt": "hi"}, "stream", "true"),
        ("/v1/embeddings", {"input": "hi"}, "dimensions", "8"),
        ("/v1/tokens/check", {}, "tokens", 5.0),
        ("/admin/keys", {"tenant": "acme"}, "expires_in", "60"),
        ("/admin/budgets/acme/default", {}, "tokens", "100"),
    ],
)
def test_types_are_strict(
    gw: Gateway, key: str, path: str, body: dict[str, Any], field: str, value: object
) -> None:
    assert_400(send(gw, key, path, body | {field: value}), field, "valid")


@pytest.mark.parametrize(
    ("field", "value"), [("max_tokens", "5"), ("max_tokens", 5.0), ("stream", "yes"), ("temperature", "0")]
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_messages_routes_are_strict_in_anthropic_shape(
    gw: Gateway, key: str, path: str, field: str, value: object
) -> None:
    assert assert_400(send(gw, key, path, ANTHROPIC | {field: value})).startswith(f"{field}: ")


def test_nested_strict_fields(gw: Gateway, key: str) -> None:
    usage = send(
        gw, key, "/v1/chat/completions", CHAT | {"stream": True, "stream_options": {"include_usage": 1}}
    )
    assert_400(usage, "stream_options.include_usage")
    block = {"type": "tool_result", "tool_use_id": "t1", "content": "r", "is_error": "no"}
    result = send(gw, key, "/v1/messages", ANTHROPIC | {"messages": [{"role": "user", "content": [block]}]})
    assert assert_400(result).startswith("messages[0].content[0].is_error: Input should be a valid boolean")


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe{}",  # outside any string
        b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',  # latin-1 inside a string
        b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # a UTF-8-encoded surrogate
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/admin/keys"])
def test_a_body_that_is_not_utf8_is_400(gw: Gateway, key: str, path: str, content: bytes) -> None:
    assert_400(send(gw, key, path, content=content), None, "request body is not UTF-8 JSON")


def nested(depth: int) -> Any:
    value: Any = {"type": "string"}
    for _ in range(depth):
        value = {"items": value}
    return value


def tool_schema_body(depth: int) -> dict[str, Any]:
    """A chat body whose JSON nests ``depth`` levels: 5 are the body's own, the rest a tool's schema."""
    tool = {"type": "function", "function": {"name": "f", "parameters": nested(depth - 5)}}
    return CHAT | {"tools": [tool]}


def test_nesting_up_to_the_limit_is_served(gw: Gateway, key: str) -> None:
    response = send(gw, key, "/v1/chat/completions", tool_schema_body(MAX_JSON_DEPTH))
    assert response.status_code == 200, response.text
    brackets_in_a_string = CHAT | {"messages": [{"role": "user", "content": '["{' * 10_000}]}
    assert send(gw, key, "/v1/chat/completions", brackets_in_a_string).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        None,  # one level too deep, in a tool schema
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b'{"messages":' + b"[{" * 50_000,  # malformed and deep
        b'{"x": "\\"", "y": ' + b"[" * 100 + b"]" * 100 + b"}",  # an escaped quote does not end the string
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/tokens/check", "/admin/keys"])
def test_nesting_past_the_limit_is_400(gw: Gateway, key: str, path: str, content: bytes | None) -> None:
    body = tool_schema_body(MAX_JSON_DEPTH + 1) if content is None else None
    assert_400(send(gw, key, path, body, content=content), None, f"nests deeper than {MAX_JSON_DEPTH}")


@pytest.mark.parametrize(
    "content",
    [
        b'{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}',
        b'{"messages": [{"role": "user", "content": "hi"}], "seed": ' + b"9" * 5_000 + b"}",
        b'{"messages": [{"role": "user", "content": "\\ud800"}]}',  # a lone surrogate escape
    ],
)
def test_numbers_and_escapes_json_cannot_carry_are_400(gw: Gateway, key: str, content: bytes) -> None:
    assert_400(send(gw, key, "/v1/chat/completions", content=content), None, "not valid JSON")


def with_tool_call(arguments: str) -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return [
        *MESSAGES,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]


@pytest.mark.parametrize("provider", ["claude", "bedrock"])
def test_tool_call_arguments_json_is_depth_checked_too(gw: Gateway, key: str, provider: str) -> None:
    """Adapters that send arguments as an object parse the JSON string a client sent in an assistant turn."""
    param = "messages[1].tool_calls[0].function.arguments"
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        arguments = '{"a":' * depth + "1" + "}" * depth
        body = CHAT | {"provider": provider, "messages": with_tool_call(arguments)}
        response = send(gw, key, "/v1/chat/completions", body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and f"nest deeper than {MAX_JSON_DEPTH}" in error["message"]
    arguments = '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH
    body = CHAT | {"provider": provider, "messages": with_tool_call(arguments)}
    assert send(gw, key, "/v1/chat/completions", body).status_code == 200


def test_the_key_is_checked_before_the_body(gw: Gateway, key: str) -> None:
    for content in (b"\xff\xfe", b"[" * 100_000):
        response = httpx.post(f"{gw.url}/v1/chat/completions", content=content, timeout=20)
        assert response.status_code == 401, response.text


def test_values_bedrock_refuses_locally_are_400(gw: Gateway, key: str) -> None:
    """botocore validates before sending: what fails there came from the body (an empty stop sequence)."""
    body = CHAT | {"provider": "bedrock", "stop": [""]}
    for stream in (False, True):
        response = send(gw, key, "/v1/chat/completions", body | {"stream": stream})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "upstream_bad_request"


LONG = "x" * 10_000
# (method, path, query, body, param): strings that would land in a store key or item, past their bounds
STORED_STRINGS = [
    ("POST", "/v1/chat/completions", None, CHAT | {"model": "openai/" + LONG}, "model"),
    ("POST", "/v1/messages", None, ANTHROPIC | {"model": LONG}, "model"),
    ("POST", "/v1/embeddings", None, {"input": "hi", "model": LONG}, "model"),
    ("POST", "/admin/keys", None, {"tenant": "acme", "models": [LONG]}, "models[0]"),
    ("POST", "/admin/keys", None, {"tenant": "acme", "models": ["openai/*"] * 257}, "models"),
    ("DELETE", f"/v1/sessions/{LONG}", None, None, "session_id"),
    ("DELETE", "/v1/sessions/a%00b", None, None, "session_id"),
    ("GET", "/admin/audit/verify", {"tenant": LONG}, None, "tenant"),
    ("GET", "/admin/keys", {"tenant": "a/b"}, None, "tenant"),
    ("GET", "/admin/budgets", {"tenant": ""}, None, "tenant"),
    ("GET", "/admin/costs", {"tenant": LONG}, None, "tenant"),
    ("GET", "/v1/audit", {"after_seq": str(BIG)}, None, "after_seq"),
    ("POST", "/v1/chat/completions", None, CHAT | {"max_tokens": BIG}, "max_tokens"),
]


def request_as(gw: Gateway, key: str, method: str, path: str, query: Any, body: Any) -> httpx.Response:
    token = ADMIN_KEY if path.startswith("/admin") else key
    headers = {"authorization": f"Bearer {token}"}
    return httpx.request(method, f"{gw.url}{path}", params=query, json=body, headers=headers, timeout=20)


def check_stored_strings(gw: Gateway, key: str) -> None:
    for method, path, query, body, param in STORED_STRINGS:
        response = request_as(gw, key, method, path, query, body)
        if path == "/v1/messages":
            assert response.status_code == 400 and param in response.json()["error"]["message"], response.text
        else:
            assert_400(response, param)


@pytest.mark.parametrize("tenant", ["acme\n", "acme\r\n", "\nacme"])
@pytest.mark.parametrize(
    "path", ["/admin/keys", "/admin/budgets", "/admin/limits", "/admin/audit/verify", "/admin/costs"]
)
def test_a_tenant_filter_with_a_line_break_is_a_400(gw: Gateway, key: str, path: str, tenant: str) -> None:
    """Found by a hostile review: the query pattern's ``$`` matched before a trailing newline, so
    ``?tenant=acme%0A`` listed nothing (or verified nothing: valid) instead of refusing the name."""
    response = httpx.get(f"{gw.url}{path}", params={"tenant": tenant}, headers=ADMIN, timeout=20)
    assert_400(response, "tenant")


def test_strings_the_stores_keep_are_bounded(gw: Gateway, key: str) -> None:
    check_stored_strings(gw, key)


@pytest.fixture
def dynamodb_gw(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[Gateway]:
    with backend(tmp_path, "dynalite"):
        store = DynamoDBStore(f"tollgate-input-{uuid.uuid4().hex[:12]}", region=REGION)
        asyncio.run(store.init_schema())
        settings = Settings(
            default_provider="openai",
            openai_api_key="sk-upstream",
            openai_base_url=f"{fake_openai.url}/v1",
            admin_key=ADMIN_KEY,
            store="dynamodb",
            table=store.table,
        )
        app = create_app(settings, store=DynamoDBStore(store.table, region=REGION), include_admin=True)
        with ServerThread(app, lifespan="on") as server:
            yield Gateway(server, fake_openai)
        store.client().delete_table(TableName=store.table)


def test_on_dynamodb_too_they_are_400s_not_store_errors(dynamodb_gw: Gateway) -> None:
    """DynamoDB refuses keys over 2 KB / 1 KB and items over 400 KB: the bounds keep those from a client."""
    check_stored_strings(dynamodb_gw, dynamodb_gw.new_key("acme"))


def test_a_block_type_that_is_not_a_string_is_a_400(gw: Gateway, key: str) -> None:
    """Found by schemathesis: ``{"type": {...}}`` as a content block crashed the block discriminator."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": {"x": 1}}]}]}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert send(gw, key, path, body).status_code == 400


# a model name tollgate cannot put into a response header as it is (CR/LF/NUL: a split or dropped response)
CONTROL_MODELS = [
    "openai/a\r\nx-injected: 1",
    "openai/a\nb",
    "openai/a\x00b",
    "openai/a\x7fb",
    "openai/a\x85b",
]
MODEL_ENDPOINTS = [
    ("/v1/chat/completions", {"messages": MESSAGES}),
    ("/v1/chat/completions", {"messages": MESSAGES, "stream": True}),
    ("/v1/completions", {"prompt": "hi"}),
    ("/v1/messages", ANTHROPIC),
    ("/v1/embeddings", {"input": "hi"}),
    ("/v1/responses", {"input": "hi"}),
]


@pytest.mark.parametrize("model", CONTROL_MODELS)
@pytest.mark.parametrize(
    ("path", "body"),
    MODEL_ENDPOINTS,
    ids=[f"{p}{'+stream' if 'stream' in b else ''}" for p, b in MODEL_ENDPOINTS],
)
def test_a_model_name_with_control_characters_is_400_before_any_upstream_call(
    gw: Gateway, key: str, fake_openai: FakeOpenAI, path: str, body: dict[str, Any], model: str
) -> None:
    response = send(gw, key, path, {**body, "model": model})
    assert_400(response, "model", "control characters")
    assert fake_openai.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_a_model_name_outside_latin1_is_served_and_settled(
    gw: Gateway, fake_openai: FakeOpenAI, stream: bool
) -> None:
    """``openai/日本`` (the key admits openai/*): the headers carry it percent-encoded, the request is
    answered and settled once (no 500 after the upstream was paid, no hold left open)."""
    key = gw.new_key("acme", models=["openai/*"])
    gw.set_budget("acme", "default", 1_000_000)
    response = send(
        gw, key, "/v1/chat/completions", {"model": "openai/日本", "messages": MESSAGES, "stream": stream}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-tollgate-model"] == "%E6%97%A5%E6%9C%AC"
    assert len(fake_openai.requests) == 1
    pools = gw.get(key, "/v1/tokens/pools").json()["pools"]
    assert [p["reserved"] for p in pools] == [0] and pools[0]["used"] > 0, pools
    (entry,) = gw.get(key, "/v1/audit").json()["entries"]
    assert entry["model"] == "日本" and entry["status"] == "ok"


def test_an_upstream_failure_for_a_model_outside_latin1_is_its_json_error(
    gw: Gateway, fake_openai: FakeOpenAI
) -> None:
    key = gw.new_key("acme", models=["openai/*"])
    fake_openai.enqueue(Script(status=503))
    response = send(gw, key, "/v1/chat/completions", {"model": "openai/日本", "messages": MESSAGES})
    assert response.status_code == 503 and response.json()["error"]["message"], response.text
    assert response.headers["x-tollgate-model"] == "%E6%97%A5%E6%9C%AC"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("a\r\nb\x00", "a%0D%0Ab%00"),
        ("5%", "5%25"),
    ],
)
def test_a_header_value_is_printable_ascii(value: str, sent: str) -> None:
    assert header_value(value) == sent
