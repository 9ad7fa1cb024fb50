"""Wake-on-demand for the llama.cpp GPU service on ECS (infra/llama-cpp.yaml).

The service idles at ``desiredCount`` 0 (no GPU instance, no cost). ``LlamaCppWaker.ensure_awake`` asks ECS
whether a task runs; when none does it raises the desired count to 1 (a cold start begins: the capacity
provider launches a GPU instance, the agent pulls the image, llama-server loads the model) and answers
False. ``WakeOnDemandProvider`` wraps the llama_cpp adapter: while the service sleeps it answers
``UpstreamUnavailable`` (``provider_starting``, with ``retry_after``: 503 + Retry-After), which the router
turns into an attempt on ``LLAMA_CPP_FALLBACK_PROVIDER`` when one is configured.

"Last used" lives on the ECS service itself, as the tag ``tollgate:last-used`` (epoch seconds): written
when the service is woken and then at most once a minute per process while requests are served. The
scheduled idle check (functions/llama_idle) reads it back with ``describe_services(include=["TAGS"])``.

boto3 is imported and the ECS client built on first use, on this module's own small thread pool (import
time is Lambda cold-start time; boto3 blocks, so it never runs on the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..aws import LazyClient
from ..errors import UpstreamUnavailable
from ..logs import log_event
from .base import ChatCall, Chunk, Provider

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

__all__ = ["LAST_USED_TAG", "LlamaCppWaker", "WakeOnDemandProvider"]

LAST_USED_TAG = "tollgate:last-used"
AWAKE_CACHE_SECONDS = 10.0
ASLEEP_CACHE_SECONDS = 5.0
TOUCH_EVERY_SECONDS = 60.0

logger = logging.getLogger("tollgate.llama_wake")
_T = TypeVar("_T")


class LlamaCppWaker:
    """Asks ECS whether the llama.cpp service runs a task, wakes it, and records when it was last used."""

    def __init__(
        self,
        cluster: str,
        service: str,
        *,
        region: str,
        retry_after: float,
        client: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.service = service
        self.retry_after = retry_after
        self._region = region
        self._boto = LazyClient("ecs", region=region, client=client)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llama-wake")
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = asyncio.Lock()
        self._awake = False
        self._state_until = float("-inf")
        self._last_touch = float("-inf")
        self._service_arn: str | None = None

    # ------------------------------------------------------------------------------------------ client

    def _ensure_client(self) -> ECSClient:
        client: ECSClient = self._boto.get()
        return client

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    # ------------------------------------------------------------------------------------------- state

    def _remember(self, awake: bool) -> bool:
        self._awake = awake
        self._state_until = self._clock() + (AWAKE_CACHE_SECONDS if awake else ASLEEP_CACHE_SECONDS)
        return awake

    def mark_asleep(self) -> None:
        """Believe the service asleep for a few seconds (the next check asks ECS again)."""
        self._remember(False)

    async def refused(self) -> None:
        """The server refused a connection or is still loading the model.

        Either it is still starting, or the idle check stopped it while this process believed it awake:
        ask ECS once (which wakes a stopped service), then believe it asleep for a few seconds. Never raises.
        """
        async with self._lock:
            try:
                await self._run(self._check_and_wake)
            except Exception as exc:
                log_event(logger, logging.WARNING, "llama_cpp_wake_check_failed", error=type(exc).__name__)
            self._remember(False)

    async def ensure_awake(self) -> bool:
        """True when a task runs; otherwise start one (when none is wanted yet) and answer False."""
        if self._clock() < self._state_until:
            return self._awake
        async with self._lock:  # concurrent callers share one DescribeServices
            if self._clock() < self._state_until:
                return self._awake
            return self._remember(await self._run(self._check_and_wake))

    def _check_and_wake(self) -> bool:
        client = self._ensure_client()
        found = client.describe_services(cluster=self.cluster, services=[self.service])["services"]
        if not found:
            raise UpstreamUnavailable(f"the llama.cpp ECS service {self.service} does not exist")
        service = found[0]
        self._service_arn = service["serviceArn"]
        if service.get("runningCount", 0) >= 1:
            return True
        if service.get("desiredCount", 0) == 0:
            client.update_service(cluster=self.cluster, service=self.service, desiredCount=1)
            self._tag_last_used()  # a fresh wake must not look idle to the scheduled check
            log_event(logger, logging.INFO, "llama_cpp_wake", cluster=self.cluster, service=self.service)
        return False

    # ---------------------------------------------------------------------------------------- last use

    async def record_use(self) -> None:
        """Tag the service with the time of use, at most once per ``TOUCH_EVERY_SECONDS``; never raises.

        Awaited (not left running): a Lambda sandbox freezes as soon as the response ends.
        """
        now = self._clock()
        if now - self._last_touch < TOUCH_EVERY_SECONDS:
            return
        self._last_touch = now
        try:
            await self._run(self._tag_last_used)
        except Exception as exc:
            log_event(logger, logging.WARNING, "llama_cpp_last_used_failed", error=type(exc).__name__)

    def _tag_last_used(self) -> None:
        client = self._ensure_client()
        if self._service_arn is None:
            found = client.describe_services(cluster=self.cluster, services=[self.service])["services"]
            self._service_arn = found[0]["serviceArn"]
        stamp = str(int(self._wall_clock()))
        client.tag_resource(resourceArn=self._service_arn, tags=[{"key": LAST_USED_TAG, "value": stamp}])

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._boto.close()


class WakeOnDemandProvider:
    """The llama_cpp adapter behind a waker: asleep (or refusing while it starts) -> 503 provider_starting
    with Retry-After, which the router answers with ``LLAMA_CPP_FALLBACK_PROVIDER`` when one is set (a
    fallback attempt of its own: priced, audited and allow-listed as the provider that served)."""

    def __init__(self, inner: Provider, waker: LlamaCppWaker) -> None:
        self.name = inner.name
        self.inner = inner
        self.waker = waker

    async def chat(self, call: ChatCall) -> AsyncIterator[Chunk]:
        if not await self._awake():
            raise self._starting()
        await self.waker.record_use()
        started = False
        try:
            async for chunk in self.inner.chat(call):
                started = True
                yield chunk
        except UpstreamUnavailable:
            if started:
                self.waker.mark_asleep()
                raise
            # connection refused / name not yet in Cloud Map / "Loading model": starting, or stopped
            await self.waker.refused()
            raise self._starting() from None

    async def _awake(self) -> bool:
        """ECS says so; when ECS cannot be asked, try the server anyway (it may well be up)."""
        try:
            return await self.waker.ensure_awake()
        except UpstreamUnavailable:
            raise
        except Exception as exc:
            log_event(logger, logging.WARNING, "llama_cpp_wake_check_failed", error=type(exc).__name__)
            return True

    def _starting(self) -> UpstreamUnavailable:
        seconds = round(self.waker.retry_after)
        return UpstreamUnavailable(
            f"llama.cpp is starting (GPU instance boot, image pull, model load); retry in ~{seconds} s",
            retry_after=self.waker.retry_after,
            code="provider_starting",
        )

    async def aclose(self) -> None:
        """Closes the inner adapter and the waker."""
        await self.inner.aclose()
        await self.waker.aclose()
