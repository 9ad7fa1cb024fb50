"""The Responses API's streamed event sequence, from the internal chunks.

``response.created``, ``response.in_progress``; per output item ``response.output_item.added``, its
deltas (``response.content_part.added`` + ``response.output_text.delta`` for text,
``response.function_call_arguments.delta`` for a function call, ``response.custom_tool_call_input.delta``
for a custom tool), its ``.done`` events and ``response.output_item.done``; then ``response.completed``
(usage included) or ``response.incomplete``; ``response.failed`` on an error. Every event carries its
``sequence_number``. An item is closed before the next one opens (OpenAI-style upstreams stream one tool
call after another); a late piece for a closed item is ignored rather than reopening it.

An upstream that speaks the Responses API itself (OpenAI, ``providers.openai_responses``) sends
``NativeEvent`` chunks: those are passed on as they are (renumbered; reasoning items and encrypted content
included) and the typed chunks beside them only count; its final ``response`` object ends the stream,
under tollgate's response id and with the ``tollgate`` extension.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import TollgateError
from ..lifecycle import Outcome
from ..providers.base import ChatCall, Chunk, Finish, NativeEvent, ResponseMeta, TextDelta, ToolCallDelta
from ..schemas.responses import ResponsesChatRequest, ResponsesExtras
from ..streaming import ResponseBuilder
from . import compaction
from .responses_output import (
    Item,
    call_id,
    call_item,
    custom_input,
    failed,
    message_item,
    output_text,
    response_id,
    response_object,
    status_of,
)


def extras_of(call: ChatCall) -> ResponsesExtras:
    request = call.request
    return request.responses if isinstance(request, ResponsesChatRequest) else ResponsesExtras()


class _Open:
    """The output item being streamed: its index, its item, and what has arrived for it."""

    def __init__(self, index: int, item: Item, tool_index: int | None = None) -> None:
        self.index, self.item, self.tool_index = index, item, tool_index
        self.buffer: list[str] = []


class ResponsesEncoder:
    def __init__(self, call: ChatCall) -> None:
        self.call = call
        self.extras = extras_of(call)
        self.model = call.model
        self.sequence = 0
        self.output: list[Item] = []  # closed items, in order
        self.open: _Open | None = None
        self.tools_seen: set[int] = set()
        self.finish: str | None = None
        self.native = False  # the upstream streams Responses events itself
        self.native_final: dict[str, Any] | None = None  # its completed/incomplete event, held for ``end``
        self.summary: list[str] = []  # a compaction's text

    def _event(self, kind: str, **payload: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + msgspec.json.encode(body) + b"\n\n"

    def _response(self, status: str, **more: Any) -> dict[str, Any]:
        return response_object(
            self.call.request_id, self.model, self.extras, status=status, output=list(self.output), **more
        )

    def start(self) -> list[bytes]:
        body = self._response("in_progress")
        return [
            self._event("response.created", response=body),
            self._event("response.in_progress", response=body),
        ]

    def chunk(self, chunk: Chunk) -> list[bytes]:
        if isinstance(chunk, NativeEvent):
            return self._native(chunk.payload)
        if self.native:
            return []  # the native events carry it
        if self.extras.compaction and isinstance(chunk, (TextDelta, ToolCallDelta)):
            if isinstance(chunk, TextDelta):
                self.summary.append(chunk.text)
            return []  # the summary goes out whole, as one item, at the end
        if isinstance(chunk, TextDelta):
            return self._text(chunk.text) if chunk.text else []
        if isinstance(chunk, ToolCallDelta):
            return self._tool(chunk)
        if isinstance(chunk, Finish):
            self.finish = chunk.reason
        elif isinstance(chunk, ResponseMeta) and chunk.model:
            self.model = chunk.model
        return []

    def _native(self, payload: dict[str, Any]) -> list[bytes]:
        self.native = True
        kind = str(payload.get("type"))
        if kind in ("response.created", "response.in_progress"):
            return []  # ``start`` said so already
        if kind in ("response.completed", "response.incomplete"):
            self.native_final = payload
            return []
        body = {k: v for k, v in payload.items() if k not in ("type", "sequence_number")}
        return [self._event(kind, **body)]

    def _native_end(self, final: dict[str, Any], extension: dict[str, Any]) -> list[bytes]:
        body = {**final["response"], "id": response_id(self.call.request_id)}
        if extension:
            body["tollgate"] = extension
        return [self._event(str(final["type"]), response=body)]

    def end(self, builder: ResponseBuilder, outcome: Outcome, extension: dict[str, Any]) -> list[bytes]:
        if self.native_final is not None:
            return self._native_end(self.native_final, extension)
        frames = self._compacted() if self.extras.compaction else self._close()
        status, incomplete = status_of(self.finish)
        body = self._response(status, usage=outcome.usage or builder.final_usage())
        body["incomplete_details"] = incomplete
        if extension:
            body["tollgate"] = extension
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*frames, self._event(kind, response=body)]

    def error(self, error: TollgateError) -> list[bytes]:
        frames = self._close()
        return [*frames, self._event("response.failed", response=failed(self._response("failed"), error))]

    # --- items ------------------------------------------------------------------------------------

    def _compacted(self) -> list[bytes]:
        """A compaction's one output item, added and done at once."""
        item = compaction.item(self.call.request_id, "".join(self.summary))
        index = len(self.output)
        self.output.append(item)
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _added(self, item: Item, tool_index: int | None = None) -> list[bytes]:
        frames = self._close()
        self.open = _Open(len(self.output), item, tool_index)
        return [*frames, self._event("response.output_item.added", output_index=self.open.index, item=item)]

    def _text(self, text: str) -> list[bytes]:
        frames: list[bytes] = []
        if self.open is None or self.open.tool_index is not None:
            frames = self._added(message_item(self.call.request_id, "", "in_progress"))
            frames.append(self._part("response.content_part.added", ""))
        assert self.open is not None
        self.open.buffer.append(text)
        where = {"item_id": self.open.item["id"], "output_index": self.open.index, "content_index": 0}
        return [*frames, self._event("response.output_text.delta", **where, delta=text, logprobs=[])]

    def _part(self, kind: str, text: str) -> bytes:
        assert self.open is not None
        part = {"type": "output_text", "text": text, "annotations": []}
        where = {"item_id": self.open.item["id"], "output_index": self.open.index, "content_index": 0}
        return self._event(kind, **where, part=part)

    def _tool(self, chunk: ToolCallDelta) -> list[bytes]:
        frames: list[bytes] = []
        if chunk.index not in self.tools_seen:
            self.tools_seen.add(chunk.index)
            name = chunk.name or ""
            ids = (self.call.request_id, chunk.index, call_id(chunk.id, self.call.request_id, chunk.index))
            item = call_item(self.extras.tools.get(name), name, ids, "", status="in_progress")
            frames = self._added(item, chunk.index)
        current = self.open
        if current is None or current.tool_index != chunk.index or not chunk.arguments:
            return frames
        current.buffer.append(chunk.arguments)
        if current.item["type"] == "custom_tool_call":
            return frames  # the input is known once the arguments are complete
        where = {"item_id": current.item["id"], "output_index": current.index}
        return [
            *frames,
            self._event("response.function_call_arguments.delta", **where, delta=chunk.arguments),
        ]

    def _close(self) -> list[bytes]:
        current, self.open = self.open, None
        if current is None:
            return []
        text = "".join(current.buffer)
        item = current.item
        where = {"item_id": item["id"], "output_index": current.index}
        if item["type"] == "message":
            self.open = current  # _part reads it
            frames = [
                self._event("response.output_text.done", **where, content_index=0, text=text, logprobs=[]),
                self._part("response.content_part.done", text),
            ]
            self.open = None
            item = {**item, "status": "completed", "content": [output_text(text)]}
        elif item["type"] == "custom_tool_call":
            item = {**item, "status": "completed", "input": custom_input(text)}
            frames = [self._event("response.custom_tool_call_input.done", **where, input=item["input"])]
        else:
            item = {**item, "status": "completed", "arguments": text}
            frames = [self._event("response.function_call_arguments.done", **where, arguments=text)]
        self.output.append(item)
        return [*frames, self._event("response.output_item.done", output_index=current.index, item=item)]
