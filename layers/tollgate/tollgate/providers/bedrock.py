"""Amazon Bedrock through boto3's Converse and ConverseStream: the thin I/O around ``bedrock_mapping``.

boto3 blocks, so every call runs on this adapter's own bounded thread pool (never the loop's default
executor). A stream is pumped by one worker thread that iterates the EventStream and hands each event to
the event loop (``call_soon_threadsafe``); when the consumer goes away the worker is told to stop and the
EventStream is closed, so the thread ends and the connection is let go promptly.

boto3 is imported, and the client built, on first use (import time is Lambda cold-start time). Endpoint
overrides come only from boto3's own configuration (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..aws import LazyClient
from ..config import ProviderConfig
from ..errors import UpstreamUnavailable
from .base import ChatCall, Chunk, EmbeddingCall, EmbeddingResult, ResponseMeta
from .bedrock_embeddings import Invocation, combine, invoke_requests, token_count
from .bedrock_errors import error_for_exception
from .bedrock_mapping import (
    StreamState,
    parse_response,
    parse_stream_event,
    response_meta,
    to_converse,
)

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

__all__ = ["BedrockProvider"]

# what CountTokens takes of a Converse request
COUNT_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
# What the worker thread hands to the loop: an event, the response metadata, a failure, or None (the end).
_Item = Mapping[str, Any] | ResponseMeta | BaseException | None
_T = TypeVar("_T")


def _interrupt(stream: Any) -> None:
    """Close an EventStream from another thread, waking a worker blocked in a read.

    ``EventStream.close()`` closes the socket but does not wake a read already blocked on it; urllib3's
    ``HTTPResponse.shutdown()`` (urllib3 >= 2.3) does, so it is tried first, best effort.
    """
    raw = getattr(stream, "_raw_stream", None)
    shutdown = getattr(raw, "shutdown", None)
    if callable(shutdown):
        with contextlib.suppress(Exception):
            shutdown()
    with contextlib.suppress(Exception):
        stream.close()


def _shut_down() -> UpstreamUnavailable:
    return UpstreamUnavailable("the bedrock provider is shut down")


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Feed:
    """The hand-over between one stream's worker thread and its async consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._loop = loop
        self._lock = threading.Lock()
        self._stopped = False
        self._stream: Any = None

    @property
    def stopped(self) -> bool:
        return self._stopped

    def put(self, item: _Item) -> None:
        """Worker side: hand one item to the loop (dropped once the consumer has gone)."""
        if not self._stopped:
            self._send(item)

    def finish(self) -> None:
        """Worker side: close the stream (letting its connection go) and mark the end."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        self._send(None)

    def worker_done(self, future: Future[None]) -> None:
        """A worker cancelled before it ran (the pool shut down) still ends the stream."""
        if future.cancelled():
            self._send(_shut_down())
            self._send(None)

    def _send(self, item: _Item) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def attach(self, stream: Any) -> None:
        """Worker side: remember the EventStream so ``stop`` can close it (closes it if already stopped)."""
        with self._lock:
            self._stream = stream
            stopped = self._stopped
        if stopped:
            _interrupt(stream)

    def stop(self) -> None:
        """Consumer side: the consumer has gone; end the worker and let the connection go."""
        with self._lock:
            self._stopped = True
            stream, self._stream = self._stream, None
        if stream is not None:
            _interrupt(stream)


class BedrockProvider:
    """Converse (``stream: false``) and ConverseStream (``stream: true``) over one lazily built client."""

    name = "bedrock"

    def __init__(
        self,
        config: ProviderConfig,
        *,
        max_concurrency: int,
        connect_timeout: float,
        read_timeout: float,
        client: Any | None = None,
    ) -> None:
        self.config = config
        self._max_concurrency = max_concurrency
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._boto = LazyClient(
            "bedrock-runtime",
            region=config.region,
            client=client,
            max_pool_connections=max_concurrency,
            retries={"total_max_attempts": 1, "mode": "standard"},  # tollgate, not botocore, decides
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="bedrock")
        self._closed = False

    # ------------------------------------------------------------------------------------------ client

    def _ensure_client(self) -> BedrockRuntimeClient:
        """The client, built once on first use (runs on a pool thread, so never blocks the loop)."""
        client: BedrockRuntimeClient = self._boto.get()
        return client

    # ------------------------------------------------------------------------------------------- calls

    async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        kwargs = to_converse(call)
        if call.stream:
            async for chunk in self._stream(call, kwargs):
                yield chunk
            return
        future = self._submit(self._converse, kwargs)
        try:
            response = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if future.cancelled() and not _cancelling():  # the pool shut down, not our caller
                raise _shut_down() from None
            raise
        except Exception as exc:
            raise error_for_exception(exc) from exc
        for chunk in parse_response(response, call.model):
            yield chunk

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        """Titan or Cohere embeddings through ``InvokeModel``, each invocation on the adapter's pool."""
        futures = [self._submit(self._invoke, kwargs) for kwargs in invoke_requests(call)]
        try:
            invocations = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        except asyncio.CancelledError:
            if any(f.cancelled() for f in futures) and not _cancelling():
                raise _shut_down() from None
            raise
        except Exception as exc:
            raise error_for_exception(exc) from exc
        return combine(call, list(invocations))

    async def count_tokens(self, call: ChatCall) -> int | None:
        """Bedrock's CountTokens over the Converse form of the request."""
        kwargs = to_converse(call)
        converse = {k: kwargs[k] for k in COUNT_FIELDS if k in kwargs}
        future = self._submit(self._count, {"modelId": call.model, "input": {"converse": converse}})
        try:
            response = await asyncio.wrap_future(future)
        except Exception as exc:
            raise error_for_exception(exc) from exc
        count = response.get("inputTokens")
        return count if isinstance(count, int) else None

    def _count(self, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        return self._ensure_client().count_tokens(**kwargs)

    def _invoke(self, kwargs: dict[str, Any]) -> Invocation:
        """Worker thread: one ``invoke_model``, its body read and decoded here (reading blocks)."""
        response = self._ensure_client().invoke_model(**kwargs)
        body = json.loads(response["body"].read())
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return Invocation(body=body if isinstance(body, dict) else {}, token_count=token_count(headers))

    def _converse(self, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        return self._ensure_client().converse(**kwargs)

    def _submit(self, fn: Callable[..., _T], *args: Any) -> Future[_T]:
        """Run ``fn`` on the adapter's own pool (never the loop's default executor)."""
        if self._closed:
            raise _shut_down()
        try:
            return self._pool.submit(fn, *args)
        except RuntimeError as exc:  # shut down meanwhile
            raise _shut_down() from exc

    async def _stream(self, call: ChatCall, kwargs: dict[str, Any]) -> AsyncIterator[Chunk]:
        feed = _Feed(asyncio.get_running_loop())
        self._submit(self._pump, kwargs, call.model, feed).add_done_callback(feed.worker_done)
        state = StreamState()
        try:
            while (item := await feed.queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise error_for_exception(item) from item
                for chunk in [item] if isinstance(item, ResponseMeta) else parse_stream_event(item, state):
                    yield chunk
        finally:
            feed.stop()  # the worker ends on its own; nothing here waits for it

    def _pump(self, kwargs: dict[str, Any], model: str, feed: _Feed) -> None:
        """Worker thread: call ConverseStream and feed its events to the loop until the end or ``stop``."""
        try:
            if feed.stopped:
                return
            response = self._ensure_client().converse_stream(**kwargs)
            stream = response["stream"]
            feed.attach(stream)
            feed.put(response_meta(response, model))
            for event in stream:
                if feed.stopped:
                    break
                feed.put(event)
        except Exception as exc:
            feed.put(exc)  # dropped when the consumer has gone (then the failure was ours: we closed it)
        finally:
            feed.finish()

    async def aclose(self) -> None:
        """Shut the pool down (queued calls are cancelled) and close a client this adapter built."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._boto.close()
