"""The configured backend (imports only the one in use: boto3 stays out of a SQLite process)."""

from __future__ import annotations

from ..config import Settings
from .base import Store


def open_store(settings: Settings) -> Store:
    """Build the store object; no I/O happens until it is first used."""
    if settings.store == "dynamodb":
        from .dynamodb import DynamoDBStore

        return DynamoDBStore(settings.table, region=settings.aws_region, threads=settings.store_threads)
    from .sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, threads=settings.store_threads)
