"""Compaction on the Responses API, for every provider: a long conversation replaced by a summary.

OpenAI compacts on its side and hands back a ``compaction`` item whose ``encrypted_content`` only it can
read. tollgate compacts with the routed model itself: the conversation goes upstream as one ordinary turn
(tools declared but ``tool_choice`` "none") followed by ``COMPACTION_PROMPT``, and the answer comes back as
a ``compaction`` item whose ``encrypted_content`` is tollgate's own token for the summary (``SUMMARY_MARK``
and the summary in base64url: opaque to the client, readable by any tollgate). When a client sends that
item back in ``input``, it becomes a user message holding ``SUMMARY_PREFIX`` and the summary, for whichever
provider serves the next turn. A ``compaction`` item that is not tollgate's (OpenAI's own) is dropped by the
translation, as before; OpenAI's native path passes it on unchanged.

Two ways in:
- ``POST /v1/responses`` with a ``compaction_trigger`` item in ``input`` (Codex CLI's remote compaction v2):
  the answer streams, or not, as exactly one ``compaction`` output item;
- ``POST /v1/responses/compact`` (OpenAI's compact endpoint, ``client.responses.compact``): see
  ``responses_compact``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

TRIGGER = "compaction_trigger"
ITEM = "compaction"
SUMMARY_MARK = "tollgate-summary-v1:"
COMPACTION_PROMPT = (
    "The conversation above is about to be compacted: its history will be replaced by what you write now, "
    "and another assistant will carry on from it. Write a handoff summary for that assistant. Cover what the "
    "user asked for and every constraint or preference they stated; what has been done so far and the "
    "decisions taken; the current state (files, commands, results and errors that matter); and what "
    "remains to be done next. Be concise and concrete. Do not call any tool; answer with the summary only."
)
SUMMARY_PREFIX = "Summary of the conversation so far (its earlier history was compacted):\n\n"


def requested(items: Any) -> bool:
    """Whether ``input`` asks for a compaction (a ``compaction_trigger`` item)."""
    return isinstance(items, list) and any(isinstance(i, dict) and i.get("type") == TRIGGER for i in items)


def item(request_id: str, summary: str) -> dict[str, Any]:
    """The ``compaction`` output item carrying ``summary`` as tollgate's token."""
    token = SUMMARY_MARK + base64.urlsafe_b64encode(summary.encode()).decode()
    return {"type": ITEM, "id": f"cmp_{request_id}", "encrypted_content": token}


def summary_of(given: dict[str, Any]) -> str | None:
    """The summary a ``compaction`` input item carries when it is tollgate's; None for any other."""
    token = given.get("encrypted_content")
    if not isinstance(token, str) or not token.startswith(SUMMARY_MARK):
        return None
    try:
        return base64.urlsafe_b64decode(token[len(SUMMARY_MARK) :].encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
