"""Token counts when an upstream reports none, without any tokenizer download.

tiktoken fetches its tables at run time, which tollgate may not do. This estimate follows how BPE
tokenizers split English and code: short words are one token, long words one per ~4 characters,
every punctuation mark one token, plus OpenAI's per-message framing. It is marked ``estimated``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PIECES = re.compile(r"[A-Za-z]+|\d{1,3}|[^\sA-Za-z\d]")
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def estimate_tokens(text: str) -> int:
    count = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        count += 1 if len(piece) <= 6 else -(-len(piece) // 4)
    return count


def estimate_prompt_tokens(texts: Iterable[str]) -> int:
    return sum(_PER_MESSAGE + estimate_tokens(text) for text in texts) + _REPLY_PRIMING
