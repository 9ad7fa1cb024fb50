"""Digests of what went in and out of a request, for the audit entry (never the text itself)."""

from __future__ import annotations

from typing import Any

from .audit import canonical_json, sha256_hex


def answer_digest(answer: dict[str, Any] | None) -> str:
    """SHA-256 of the assistant's answer (content and tool calls) as canonical JSON; of "" when none."""
    if answer is None:
        return sha256_hex(b"")
    return sha256_hex(canonical_json({k: v for k, v in answer.items() if v is not None}))
