"""What the DynamoDB store's mixins (budgets, limits, alerts, rotation, responses, rollups) call on the
store they are mixed into: ``DynamoDBStore``'s own primitives, declared once for the type checker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .dynamodb_items import Item

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from .dynamodb_items import Request


class StoreConflict(RuntimeError):
    """A write kept losing to concurrent writers, or DynamoDB kept throttling a batch read."""


class ConditionFailed(Exception):
    """A ConditionalCheckFailedException; ``item`` is the old item when the server returned it."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("condition failed")
        self.item = item


class DynamoDBPrimitives:
    """A mixin's base: at run time nothing; ``DynamoDBStore`` provides every method below."""

    if TYPE_CHECKING:

        def call(self, operation: str, **request: Any) -> Awaitable[dict[str, Any]]: ...

        def _conditional(self, operation: str, **request: Any) -> Awaitable[dict[str, Any] | None]: ...

        def _get(self, key: Item, **request: Any) -> Awaitable[Item | None]: ...

        def _query(
            self, request: Request, limit: int | None = None, operation: str = "query"
        ) -> Awaitable[list[Item]]: ...

        def _query_pages(
            self, request: Request, limit: int | None = None, operation: str = "query"
        ) -> AsyncIterator[list[Item]]: ...

        def _batch_get(self, keys: list[Item]) -> Awaitable[list[Item]]: ...

        def _listed(self, name: str) -> Awaitable[list[Item]]: ...
