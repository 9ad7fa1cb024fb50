"""The documented range of every number a client sends, and the length of strings the stores keep
(README "Input limits").

Numbers and booleans are strict: a JSON string, a float where an integer belongs, or a number where a
boolean belongs is a 400 that names the field, never coerced. The bounds keep every value inside what
the stores hold (64-bit integers on SQLite) and what the clock can add (key expiry).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAX_OUTPUT_TOKENS = 10_000_000  # max_tokens / max_completion_tokens on every model endpoint
MAX_CHOICES = 128  # n (OpenAI's own bound; tollgate answers one choice, so n other than 1 is a 400 later)
MAX_EMBEDDING_DIMENSIONS = 65_536
MAX_POOL_TOKENS = 10**12  # /v1/tokens/* amounts
MAX_BUDGET_TOKENS = 10**15  # admin budget capacity
MAX_BUDGET_USD = 10**9  # a USD budget (10**15 micro-USD)
MAX_ALERT_PERCENT = 1000  # one alert threshold, percent of a budget
MAX_ALERTS = 10  # thresholds per budget
MAX_EXPIRES_IN_SECONDS = 100 * 365 * 86_400  # admin key expiry: 100 years
MAX_SWEEP_AGE_SECONDS = 100 * 365 * 86_400  # the sweep's older_than / --older-than: 100 years
MAX_AUDIT_SEQ = 2**53 - 1  # GET /v1/audit?after_seq (exact as a JSON number everywhere)

# strings that end up in stored items (a DynamoDB item holds at most 400 KB)
MAX_MODEL_NAME = 512  # `model` on every model endpoint; each entry of a key's `models`
MAX_KEY_MODELS = 256  # entries in a key's `models` allow-list
MAX_KEY_NAME = 200  # a key's `name` (a label; `keys create --name` too)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable_model(name: str) -> str:
    """A model name goes into a response header (``x-tollgate-model``), a log line and an audit entry:
    control characters (CR, LF, NUL, DEL, C1) have no place in one."""
    if control_characters(name):
        raise PydanticCustomError("model_name", "`model` must not contain control characters")
    return name


ModelName = Annotated[str, Field(max_length=MAX_MODEL_NAME), AfterValidator(_printable_model)]


def control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character (CR, LF, NUL, ESC, DEL, C1)."""
    return _CONTROL.search(text) is not None


def _printable_label(name: str) -> str:
    """A key's name is printed by ``keys list`` and shown by the console: no control characters."""
    if control_characters(name):
        raise PydanticCustomError("key_name", "`name` must not contain control characters")
    return name


KeyName = Annotated[str, Field(max_length=MAX_KEY_NAME), AfterValidator(_printable_label)]
