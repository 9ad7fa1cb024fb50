"""A scripted OpenAI upstream that also has ``/v1/responses`` (raw ASGI), the rest answered by FakeOpenAI.

fake = FakeOpenAIResponses(); with ServerThread(fake) as server: ...   # base URL: server.url + "/v1"
The Responses answer: a reasoning item (with encrypted content), then either ``text`` as a message or,
with ``tool_call`` set, a function call; usage 21 in (5 cached) / 9 out (4 reasoning). ``requests`` records
every request, chat completions included.
"""

from __future__ import annotations

import json
from typing import Any

from .openai_upstream import FakeOpenAI, Receive, Send, _body, _send_json, lifespan

USAGE = {
    "input_tokens": 21,
    "input_tokens_details": {"cached_tokens": 5},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 4},
    "total_tokens": 30,
}
REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA-secret-blob"}


class FakeOpenAIResponses:
    def __init__(self) -> None:
        self.chat = FakeOpenAI()
        self.requests = self.chat.requests
        self.text = "native hello"
        self.tool_call: dict[str, str] | None = None  # {"call_id", "name", "arguments"}
        self.fail = False
        self.fail_usage: dict[str, Any] | None = None  # the usage a failed response reports
        self.searches = 0  # hosted web_search_call items the final answer holds (billed per call)
        self.file_searches = 0  # hosted file_search_call items, after them
        self.container: str | None = None  # a code_interpreter_call item in this container, after them

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["path"] != "/v1/responses":
            await self.chat(scope, receive, send)
            return
        raw = await _body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = json.loads(raw) if raw else {}
        self.requests.append((scope["path"], headers, body))
        if body.get("stream"):
            await self._stream(send, body)
        elif self.fail:  # a whole response that failed: status "failed", its error and usage
            failed = {**self._response(body, "failed", []), "error": {"message": "boom"}}
            await _send_json(send, 200, failed | {"usage": self.fail_usage}, {})
        else:
            await _send_json(send, 200, self._response(body, "completed", self._final_output()), {})

    def _output(self) -> list[dict[str, Any]]:
        if self.tool_call is not None:
            call = {"type": "function_call", "id": "fc_1", "status": "completed", **self.tool_call}
            return [REASONING, call]
        content = [{"type": "output_text", "text": self.text, "annotations": []}]
        message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant"}
        return [REASONING, {**message, "content": content}]

    def _final_output(self) -> list[dict[str, Any]]:
        """The answer's items, with the hosted calls it ran (web and file searches, code) after the
        reasoning."""
        search = {"type": "web_search_call", "status": "completed", "action": {"type": "search"}}
        searches = [{**search, "id": f"ws_{n}"} for n in range(self.searches)]
        found = {"type": "file_search_call", "status": "completed", "queries": ["q"], "results": None}
        searches += [{**found, "id": f"fs_{n}"} for n in range(self.file_searches)]
        if self.container is not None:
            ran = {"type": "code_interpreter_call", "id": "ci_1", "status": "completed", "code": "1+1"}
            searches.append({**ran, "container_id": self.container, "outputs": None})
        first, *rest = self._output()
        return [first, *searches, *rest]

    @staticmethod
    def _response(body: dict[str, Any], status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        done = status == "completed"
        return {
            "id": "resp_upstream_1",
            "object": "response",
            "created_at": 1,
            "status": status,
            "model": body.get("model"),
            "output": output,
            "tools": body.get("tools") or [],  # as OpenAI does: the request's tools, repeated
            "usage": USAGE if done else None,
            "error": None,
            "incomplete_details": None,
        }

    def _events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response(body, "in_progress", [])},
            {"type": "response.in_progress", "response": self._response(body, "in_progress", [])},
            {"type": "response.output_item.added", "output_index": 0, "item": {**REASONING}},
            {"type": "response.output_item.done", "output_index": 0, "item": REASONING},
        ]
        item = self._output()[1]
        if self.fail:
            failed = {"error": {"message": "boom"}, "usage": self.fail_usage}
            return [*events, {"type": "response.failed", "response": failed}]
        if item["type"] == "function_call":
            added = {**item, "arguments": "", "status": "in_progress"}
            events += [
                {"type": "response.output_item.added", "output_index": 1, "item": added},
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": 1,
                    "item_id": "fc_1",
                    "delta": item["arguments"],
                },
                {
                    "type": "response.function_call_arguments.done",
                    "output_index": 1,
                    "item_id": "fc_1",
                    "arguments": item["arguments"],
                },
            ]
        else:
            added = {**item, "content": [], "status": "in_progress"}
            events += [
                {"type": "response.output_item.added", "output_index": 1, "item": added},
                {
                    "type": "response.output_text.delta",
                    "output_index": 1,
                    "item_id": "msg_1",
                    "content_index": 0,
                    "delta": self.text,
                },
            ]
        events.append({"type": "response.output_item.done", "output_index": 1, "item": item})
        completed = self._response(body, "completed", self._final_output())
        return [*events, {"type": "response.completed", "response": completed}]

    async def _stream(self, send: Send, body: dict[str, Any]) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n, event in enumerate(self._events(body)):
            frame = f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': n})}\n\n"
            await send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
