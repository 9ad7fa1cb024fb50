"""A fake Amazon Bedrock runtime that speaks the real wire format, for real boto3 to talk to.

    fake = FakeBedrock()
    base_url = fake.start()                 # http://127.0.0.1:PORT, served from a background thread
    for name, value in fake.env().items():  # point boto3 at it: endpoint, dummy keys, region
        monkeypatch.setenv(name, value)
    fake.script(texts=["Hel", "lo"], delay=0.3)   # what every following request is answered with
    ...
    fake.requests        # [Recorded(operation, model_id, path, body, headers)], in arrival order
    fake.disconnects     # how many streams the client hung up on before the end
    fake.stop()          # or: with FakeBedrock() as fake: ...

Routes: ``POST /model/{modelId}/converse`` (JSON) and ``.../count-tokens``,
``POST /model/{modelId}/converse-stream``
(``application/vnd.amazon.eventstream`` frames, chunked, each frame flushed as it is written) and
``POST /model/{modelId}/invoke`` for Titan and Cohere embeddings (``bedrock_embeddings``).

Script options: ``texts`` (text pieces), ``tool_use`` (``ToolUse(name, input, tool_use_id)``, streamed as
two input pieces), ``stop_reason``, ``usage`` ((input, output) tokens), ``delay`` (seconds between stream
events, to prove incremental delivery), ``error`` (an HTTP error before any output:
``"ThrottlingException"``, ``"ValidationException"``, ``"AccessDeniedException"``, … — see ``HTTP_ERRORS``)
and ``stream_error`` (an exception frame after the text events, e.g. ``"modelStreamErrorException"``).
"""

from __future__ import annotations

import binascii
import json
import os
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from . import bedrock_embeddings

TOKEN_HEADER = "X-Amzn-Bedrock-Input-Token-Count"

EVENTSTREAM = "application/vnd.amazon.eventstream"

# error code -> HTTP status, as Bedrock answers them
HTTP_ERRORS = {
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 400,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "ResourceNotFoundException": 404,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]
    tool_use_id: str = "tooluse_fake0001"


@dataclass(frozen=True)
class Script:
    texts: tuple[str, ...] = ("Hello", " from", " fake", " Bedrock")
    tool_use: ToolUse | None = None
    stop_reason: str | None = None  # default: tool_use when a tool is used, else end_turn
    usage: tuple[int, int] = (11, 7)
    cache: tuple[int, int] = (0, 0)  # (cacheReadInputTokens, cacheWriteInputTokens), reported when not 0
    cache_1h: int = 0  # of the writes, how many had a 1-hour TTL (``cacheDetails``), reported when not 0
    delay: float = 0.0
    error: str | None = None
    stream_error: str | None = None
    error_message: str = "scripted failure"
    reasoning: tuple[str, str] | None = None  # (thinking text, signature), sent before the text
    input_tokens: int = 42  # what CountTokens answers

    @property
    def final_stop_reason(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_use else "end_turn")


@dataclass(frozen=True)
class Recorded:
    operation: str  # "converse" or "converse-stream"
    model_id: str  # URL-decoded
    path: str  # as received (still percent-encoded)
    body: dict[str, Any]
    headers: dict[str, str]


# ------------------------------------------------------------------------------------ event stream frames


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One ``application/vnd.amazon.eventstream`` message: prelude, prelude CRC, headers, payload, CRC."""
    raw_headers = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(raw_headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + raw_headers + payload
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event_frame(event_type: str, body: dict[str, Any]) -> bytes:
    # Bedrock pads every event with a "p" field (hiding token lengths); boto3 ignores it.
    payload = json.dumps({**body, "p": "abcdefghijklmnop"[: 1 + len(event_type) % 16]}).encode()
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, payload)


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception_type,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return encode_frame(headers, json.dumps({"message": message}).encode())


# ------------------------------------------------------------------------------------------- answers


def _usage(script: Script) -> dict[str, Any]:
    prompt, completion = script.usage
    read, write = script.cache
    usage: dict[str, Any] = {
        "inputTokens": prompt,
        "outputTokens": completion,
        "totalTokens": prompt + completion + read + write,
    }
    if read or write:
        usage |= {"cacheReadInputTokens": read, "cacheWriteInputTokens": write}
    if script.cache_1h:  # sorted as Bedrock sends them: 1h before 5m
        one_hour, five_minutes = script.cache_1h, write - script.cache_1h
        details = [{"ttl": "1h", "inputTokens": one_hour}, {"ttl": "5m", "inputTokens": five_minutes}]
        usage["cacheDetails"] = [d for d in details if d["inputTokens"]]
    return usage


def converse_body(script: Script) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if script.reasoning:
        text, signature = script.reasoning
        content.append({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
    if script.texts:
        content.append({"text": "".join(script.texts)})
    if script.tool_use:
        tool = script.tool_use
        content.append({"toolUse": {"toolUseId": tool.tool_use_id, "name": tool.name, "input": tool.input}})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": script.final_stop_reason,
        "usage": _usage(script),
        "metrics": {"latencyMs": 42},
    }


def stream_events(script: Script) -> list[bytes]:
    frames = [event_frame("messageStart", {"role": "assistant"})]
    block = 0
    if script.reasoning:
        for piece in ({"text": script.reasoning[0]}, {"signature": script.reasoning[1]}):
            delta = {"contentBlockIndex": block, "delta": {"reasoningContent": piece}}
            frames.append(event_frame("contentBlockDelta", delta))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    if script.texts:
        for text in script.texts:
            delta = {"contentBlockIndex": block, "delta": {"text": text}}
            frames.append(event_frame("contentBlockDelta", delta))
        frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
        block += 1
    if script.stream_error:
        return [*frames, exception_frame(script.stream_error, script.error_message)]
    if script.tool_use:
        frames += _tool_frames(script.tool_use, block)
    frames.append(event_frame("messageStop", {"stopReason": script.final_stop_reason}))
    frames.append(event_frame("metadata", {"usage": _usage(script), "metrics": {"latencyMs": 42}}))
    return frames


def _tool_frames(tool: ToolUse, block: int) -> list[bytes]:
    start = {"toolUse": {"toolUseId": tool.tool_use_id, "name": tool.name}}
    arguments = json.dumps(tool.input)
    half = len(arguments) // 2
    frames = [event_frame("contentBlockStart", {"contentBlockIndex": block, "start": start})]
    for piece in (arguments[:half], arguments[half:]):
        delta = {"toolUse": {"input": piece}}
        frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": block, "delta": delta}))
    frames.append(event_frame("contentBlockStop", {"contentBlockIndex": block}))
    return frames


# --------------------------------------------------------------------------------------------- server


def _tool_blocks_without_config(body: dict[str, Any]) -> bool:
    """What Converse refuses: tool calls or results in the messages and no ``toolConfig``."""
    blocks = [block for message in body.get("messages") or [] for block in message.get("content") or []]
    return "toolConfig" not in body and any("toolUse" in b or "toolResult" in b for b in blocks)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        fake = self.server.fake
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if (
            len(parts) != 3
            or parts[0] != "model"
            or parts[2] not in ("converse", "converse-stream", "invoke", "count-tokens")
        ):
            self._json(404, {"message": f"no route {self.path}"}, "UnknownOperationException")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        fake.record(Recorded(parts[2], unquote(parts[1]), self.path, body, dict(self.headers.items())))
        script = fake.current_script()
        if script.error:
            status = HTTP_ERRORS.get(script.error, 400)
            self._json(status, {"message": script.error_message}, script.error)
        elif parts[2].startswith("converse") and _tool_blocks_without_config(body):
            message = "The toolConfig field must be defined when using toolUse and toolResult content blocks."
            self._json(400, {"message": message}, "ValidationException")
        elif parts[2] == "invoke":
            self._invoke(unquote(parts[1]), body)
        elif parts[2] == "count-tokens":
            self._json(200, {"inputTokens": script.input_tokens})
        elif parts[2] == "converse":
            self._json(200, converse_body(script))
        else:
            self._stream(script)

    def _invoke(self, model_id: str, body: dict[str, Any]) -> None:
        status, answer, tokens = bedrock_embeddings.invoke(model_id, body)
        error = None if status == 200 else "ValidationException"
        header = tokens if self.server.fake.token_header else None
        self._json(status, answer, error, None if header is None else {TOKEN_HEADER: str(header)})

    def _json(
        self,
        status: int,
        payload: dict[str, Any],
        error_type: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        if error_type:
            # as Bedrock sends it; botocore keeps the part before the colon
            self.send_header(
                "x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/"
            )
        self.end_headers()
        self.wfile.write(raw)

    def _stream(self, script: Script) -> None:
        self.send_response(200)
        self.send_header("Content-Type", EVENTSTREAM)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        try:
            for index, frame in enumerate(stream_events(script)):
                if index and script.delay:
                    time.sleep(script.delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
            self.server.fake.client_gone()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeBedrock) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


@dataclass
class FakeBedrock:
    """A Bedrock runtime on 127.0.0.1 (random port) in a background thread; see the module docstring."""

    requests: list[Recorded] = field(default_factory=list)
    disconnects: int = 0
    token_header: bool = True  # InvokeModel answers carry X-Amzn-Bedrock-Input-Token-Count
    _script: Script = field(default_factory=Script)
    _server: _Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gone: threading.Event = field(default_factory=threading.Event)

    def start(self) -> str:
        self._server = _Server(self)
        serve = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        serve.name = "fake-bedrock"
        serve.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBedrock:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeBedrock is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """The environment that points boto3 at this fake with dummy credentials (and no ~/.aws files)."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.base_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def script(self, **options: Any) -> Script:
        """Answer every following request per ``Script(**options)`` (fields as in the module docstring)."""
        if "texts" in options:
            options["texts"] = tuple(options["texts"])
        with self._lock:
            self._script = Script(**options)
            return self._script

    def current_script(self) -> Script:
        with self._lock:
            return self._script

    def record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def client_gone(self) -> None:
        with self._lock:
            self.disconnects += 1
        self._gone.set()

    def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        """True once a client has hung up on a stream (within ``timeout`` seconds)."""
        return self._gone.wait(timeout)
