"""The DynamoDB table's definition, as the runtime and the tests use it.

The key schema is defined once, in the SAM ``template.yaml`` at the repository root (resource ``Table``).
That file is not shipped in the Lambda layer, so ``table.json`` next to this module holds a copy of the
table's ``AttributeDefinitions``, ``KeySchema``, ``GlobalSecondaryIndexes``, ``BillingMode`` and
``TimeToLiveSpecification``; a test asserts that the copy equals the template, so the two cannot drift.
``tollgate store init`` and the tests create their tables from it.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CREATE_TABLE_FIELDS", "create_table_request", "definition", "ttl_attribute"]

# What CreateTable accepts from the definition (the TTL is set by a separate UpdateTimeToLive call).
CREATE_TABLE_FIELDS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


@cache
def _load() -> dict[str, Any]:
    text = resources.files("tollgate.store").joinpath("table.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def definition() -> dict[str, Any]:
    """A fresh copy of the table definition (callers may change it)."""
    return copy.deepcopy(_load())


def create_table_request(table: str) -> dict[str, Any]:
    """The keyword arguments of ``CreateTable`` for a table named ``table``."""
    spec = definition()
    request: dict[str, Any] = {"TableName": table}
    request.update({name: spec[name] for name in CREATE_TABLE_FIELDS if name in spec})
    return request


def ttl_attribute() -> str:
    """The attribute DynamoDB's TTL deletes by (epoch seconds)."""
    name: str = _load()["TimeToLiveSpecification"]["AttributeName"]
    return name
