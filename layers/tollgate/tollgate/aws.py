"""boto3 clients, built lazily: boto3 is imported only when a Bedrock, DynamoDB or ECS path first needs it
(import time is Lambda cold-start time), once per holder, from a session of its own (boto3's default
session is not safe to share between threads)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any


class LazyClient:
    """One boto3 client, built on first ``get()`` (call it off the event loop: building may block)."""

    def __init__(self, service: str, *, region: str | None, client: Any | None = None, **config: Any) -> None:
        self._service = service
        self._region = region
        self._config = config
        self._client = client
        self._owned = client is None
        self._lock = threading.Lock()

    @property
    def current(self) -> Any | None:
        """The client if built (or injected), else None."""
        return self._client

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(**self._config) if self._config else None
                session: Any = boto3.session.Session()  # service names are runtime strings
                self._client = session.client(self._service, region_name=self._region, config=config)
            return self._client

    def close(self) -> None:
        """Close a client this holder built (an injected one belongs to its owner)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._owned:
            with contextlib.suppress(Exception):
                client.close()
