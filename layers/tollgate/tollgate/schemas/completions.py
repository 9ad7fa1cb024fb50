"""The legacy ``POST /v1/completions`` request, carried through the chat pipeline.

A completion is parsed into a chat request with the prompt as its one user message (what providers
without the legacy endpoint answer); ``legacy_prompt`` marks it, so adapters whose upstream has
``/completions`` send the prompt there instead (``ChatCall.legacy_prompt``).
"""

from __future__ import annotations

from .openai import ChatCompletionRequest


class LegacyCompletionRequest(ChatCompletionRequest):
    legacy_prompt: str
