"""Money and tokens, independent of the store: reservation estimates, pricing, cost aggregation.

Money is integer micro-USD everywhere (USD per million tokens is exactly micro-USD per token, so a
price table in USD/M multiplies straight into micro-USD); prices are Decimals from JSON text, never floats.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from .providers.base import ChatCall, Usage
from .providers.catalog import LOCAL_PROVIDERS
from .schemas.openai import ChatCompletionRequest
from .store.audit_base import ABANDONED, AuditEntry
from .store.rollup_base import COUNTERS, TOKEN_PARTS

_REGION_PREFIX = re.compile(r"^(us|eu|apac|au|ca|jp|us-gov|global)\.")
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8})$")
_PER_MESSAGE_TOKENS = 8
_BASE_TOKENS = 16


# Most tokens one image part can cost, by provider (providers resize images, so the bound is per image,
# whatever its size in bytes). OpenAI tile models: 85 + 170 x 8 tiles = 1,445 (gpt-4o), patch models at most
# 1,536 patches x 2.46 = 3,779; gpt-4o-mini bills 2,833 + 5,667 x 8 tiles = 48,169. Claude: about
# width x height / 750 after resizing to ~1.15 MP, ~1,600. Local vision models: Qwen2-VL's default cap is
# 16,384. Unknown models get their provider's bound, which is always at or above the documented maximum.
_IMAGE_TOKENS: dict[str, int] = {
    "openai": 6_000,
    "openrouter": 6_000,
    "claude": 5_000,
    "bedrock": 6_000,
    "ollama": 16_384,
    "llama_cpp": 16_384,
}
_IMAGE_TOKENS_4O_MINI = 48_169


def image_token_bound(provider: str, model: str) -> int:
    """A safe upper bound on the prompt tokens of one image part sent to ``provider``/``model``."""
    if "4o-mini" in model:
        return _IMAGE_TOKENS_4O_MINI
    return _IMAGE_TOKENS.get(provider, max(_IMAGE_TOKENS.values()))


def _unmetered_bytes(request: ChatCompletionRequest) -> int:
    """The bytes of what goes upstream beside the messages and tools and may be billed as prompt: a
    structured-output schema (``response_format``, Anthropic's ``output_config``) and the fields passed
    through as they are (legacy ``functions``, ``prediction``, Anthropic-only fields)."""
    parts: list[Any] = [request.response_format, request.passthrough()]
    options = request.anthropic
    if options is not None:
        parts += [options.output_config, options.extra]
    return sum(len(json.dumps(part, default=str).encode()) for part in parts if part)


@dataclass(frozen=True, slots=True)
class PromptBound:
    """What a request's prompt can cost whoever serves it: every prompt byte as a token (no tokenizer has
    tokens shorter than a byte; the messages, the tools and every other field an upstream may bill as
    prompt) plus chat-template framing, and how many image parts it holds."""

    tokens: int
    images: int

    @classmethod
    def of(cls, request: ChatCompletionRequest) -> PromptBound:
        messages = request.messages
        size = sum(len(m.text().encode()) + len((m.name or "").encode()) for m in messages)
        size += sum(
            len(c.function.name.encode()) + len(c.function.arguments.encode())
            for m in messages
            for c in m.tool_calls or ()
        )
        if request.tools:
            size += len(json.dumps([t.model_dump(exclude_none=True) for t in request.tools]).encode())
        size += _unmetered_bytes(request)
        framing = _PER_MESSAGE_TOKENS * len(messages) + _BASE_TOKENS
        return cls(size + framing, sum(m.image_count() for m in messages))

    def with_call(self, call: ChatCall) -> int:
        """The upper bound for one upstream call: images at its provider's bound, plus its max_tokens."""
        return self.tokens + self.images * image_token_bound(call.provider, call.model) + call.max_tokens


def reservation_estimate(call: ChatCall) -> int:
    """An upper bound on the tokens a call can use (``PromptBound`` plus the call's own part)."""
    return PromptBound.of(call.request).with_call(call)


@dataclass(frozen=True, slots=True)
class Price:
    """One model's rates, USD per million tokens. A rate the table leaves out takes the one it is a kind
    of: cache reads and cache writes the input rate, reasoning the output rate. A 1-hour cache write
    (Anthropic's ``ttl: "1h"``, reported only by Anthropic and Bedrock's Claude) left out costs what
    Anthropic bills for it, twice the input rate (its 5-minute write, ``cache_write``, is 1.25 times),
    when the entry prices cache writes, else the input rate like the other cache rates (so a model whose
    cache is not priced keeps the bound it had)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal
    cache_write_1h: Decimal

    @classmethod
    def of(
        cls,
        input: Decimal,
        output: Decimal,
        cache_read: Decimal | None = None,
        cache_write: Decimal | None = None,
        reasoning: Decimal | None = None,
        cache_write_1h: Decimal | None = None,
    ) -> Price:
        return cls(
            input,
            output,
            input if cache_read is None else cache_read,
            input if cache_write is None else cache_write,
            output if reasoning is None else reasoning,
            _one_hour_write(input, cache_write) if cache_write_1h is None else cache_write_1h,
        )

    def highest(self) -> Decimal:
        """The most one token can cost (micro-USD): what an upper bound on a request's cost uses."""
        return max(
            self.input, self.output, self.cache_read, self.cache_write, self.reasoning, self.cache_write_1h
        )

    def cost(self, usage: Usage) -> Decimal:
        """Exact micro-USD: each token at one rate. ``prompt_tokens`` holds the cache reads and writes and
        ``completion_tokens`` the reasoning (``providers.base.Usage``), so those parts are taken out of
        them first (and capped at them, should an upstream report more), never charged twice; the
        writes' 1-hour part is taken out of the writes the same way."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        one_hour = min(usage.cache_write_1h_tokens, written)
        reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
        return (
            Decimal(usage.prompt_tokens - cached - written) * self.input
            + Decimal(cached) * self.cache_read
            + Decimal(written - one_hour) * self.cache_write
            + Decimal(one_hour) * self.cache_write_1h
            + Decimal(usage.completion_tokens - reasoning) * self.output
            + Decimal(reasoning) * self.reasoning
        )


def _one_hour_write(input: Decimal, cache_write: Decimal | None) -> Decimal:
    return input if cache_write is None else max(cache_write, input * 2)


FREE = Price.of(Decimal(0), Decimal(0))
RATE_NAMES = ("input", "output", "cache_read", "cache_write", "reasoning", "cache_write_1h")


class Pricing:
    def __init__(self, table: dict[str, dict[str, Price]]) -> None:
        self._table = table

    @classmethod
    def load(cls, override_path: str | None = None) -> Pricing:
        """The packaged table, overridden/extended per model by ``TOLLGATE_PRICING_FILE``."""
        text = resources.files("tollgate").joinpath("data/pricing.json").read_text()
        table = _parse(json.loads(text, parse_float=Decimal))
        if override_path:
            extra = _parse(json.loads(Path(override_path).read_text(), parse_float=Decimal))
            for provider, models in extra.items():
                table.setdefault(provider, {}).update(models)
        return cls(table)

    def price(self, provider: str, model: str) -> Price | None:
        if provider in LOCAL_PROVIDERS:
            return FREE
        models = self._table.get(provider, {})
        bare = _REGION_PREFIX.sub("", model)
        for candidate in (model, bare, _DATE_SUFFIX.sub("", bare)):
            if candidate in models:
                return models[candidate]
        return None

    def cost(self, provider: str, model: str, usage: Usage) -> int | None:
        """The cost in integer micro-USD (rounded once, half up), or None when the model is not priced
        (never guessed)."""
        price = self.price(provider, model)
        if price is None:
            return None
        return int(price.cost(usage).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def cost_micro_usd(
        self, provider: str, model: str, prompt_tokens: int, completion_tokens: int
    ) -> int | None:
        """``cost`` of plain token counts (no cached or reasoning parts)."""
        return self.cost(provider, model, Usage(prompt_tokens, completion_tokens))


def _rate(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        rate = Decimal(str(value))
    except ArithmeticError:
        rate = Decimal(-1)
    if not rate.is_finite() or rate < 0 or isinstance(value, bool):
        raise ValueError(f"pricing: {where} must be a number of USD per million tokens, >= 0; got {value!r}")
    return rate


def _price(value: Any, where: str) -> Price:
    """``[input, output]`` (optionally ``cache_read, cache_write, reasoning, cache_write_1h`` after them;
    null or left out: the default) or an object with those names; input and output are required."""
    if isinstance(value, list) and 2 <= len(value) <= len(RATE_NAMES):
        named = dict(zip(RATE_NAMES, value, strict=False))
    elif isinstance(value, dict) and not set(value) - set(RATE_NAMES):
        named = value
    else:
        raise ValueError(
            f"pricing: {where} must be [input, output, cache_read?, cache_write?, reasoning?, "
            f"cache_write_1h?] or an object with keys {', '.join(RATE_NAMES)}"
        )
    rates = {name: _rate(named.get(name), f"{where}.{name}") for name in RATE_NAMES}
    input_rate, output_rate = rates.pop("input"), rates.pop("output")
    if input_rate is None or output_rate is None:
        raise ValueError(f"pricing: {where} needs both an input and an output rate")
    return Price.of(input_rate, output_rate, **rates)


def _parse(raw: dict[str, Any]) -> dict[str, dict[str, Price]]:
    table: dict[str, dict[str, Price]] = {}
    for provider, models in raw.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise ValueError(f"pricing: {provider} must map model names to prices")
        table[provider] = {name: _price(p, f"{provider}.{name}") for name, p in models.items()}
    return table


def usage_details(usage: Usage) -> dict[str, int]:
    """The parts of a usage that priced at their own rates, for an audit entry's ``details`` (only those
    that are not 0, so entries without them hash as before)."""
    parts = {
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
    return {name: count for name, count in parts.items() if count}


def usd(micro: int) -> str:
    """Integer micro-USD as a USD string with six decimals (no float on the way)."""
    return str((Decimal(micro) / Decimal(1_000_000)).quantize(Decimal("0.000001")))


def _group_key(entry: AuditEntry, group_by: str | None) -> str:
    if group_by == "model":
        return f"{entry.provider}/{entry.model}"
    if group_by == "day":
        return entry.at[:10]
    if group_by == "key":
        return entry.key_id
    return "all"


_COUNTS = COUNTERS
# the token totals a cost report gives beside its groups
TOTALS = ("prompt_tokens", "completion_tokens", *TOKEN_PARTS)


def token_parts(entry: AuditEntry) -> dict[str, int]:
    """The token parts priced at their own rates that an entry's ``details`` holds (``usage_details``),
    0 where it holds none (entries before them, local models)."""
    details = entry.details or {}
    return {name: value if isinstance(value := details.get(name), int) else 0 for name in TOKEN_PARTS}


def refused(entry: AuditEntry) -> bool:
    """An audited request that was not served: an error status and no tokens used (budget refusals, upstream
    failures before the first token, clients gone before it). It costs nothing and is not a request served."""
    return entry.status != "ok" and entry.prompt_tokens == 0 and entry.completion_tokens == 0


def without_superseded(entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """Drop the sweep's ``abandoned`` estimate of a request that settled after all (its own entry, with
    the real usage, is there too), and repeated estimates (a sweep that stopped between its audit entry
    and its charge audits again next time), so that no request is counted twice."""
    chosen = list(entries)
    seen = {(e.tenant, e.request_id) for e in chosen if e.status != ABANDONED}
    kept: list[AuditEntry] = []
    for entry in chosen:
        if entry.status == ABANDONED:
            if (entry.tenant, entry.request_id) in seen:
                continue
            seen.add((entry.tenant, entry.request_id))
        kept.append(entry)
    return kept


def summarize_costs(entries: Iterable[AuditEntry], group_by: str | None) -> dict[str, Any]:
    """Totals and groups for GET /v1/costs and ``tollgate costs``: ``requests`` counts the requests served
    (at least in part), ``refused`` the others."""
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in without_superseded(entries):
        group = groups[_group_key(entry, group_by)]
        if refused(entry):
            group["refused"] += 1
            continue
        group["requests"] += 1
        group["prompt_tokens"] += entry.prompt_tokens
        group["completion_tokens"] += entry.completion_tokens
        group["cost_micro_usd"] += entry.cost_micro_usd or 0
        group["unpriced_requests"] += entry.cost_micro_usd is None
        for name, count in token_parts(entry).items():
            group[name] += count
    total = sum(g["cost_micro_usd"] for g in groups.values())
    rows = [
        {"group": name, **{f: values[f] for f in _COUNTS}, "cost_usd": float(usd(values["cost_micro_usd"]))}
        for name, values in sorted(groups.items())
    ]
    return {
        "group_by": group_by,
        "total_cost_micro_usd": total,
        "total_cost_usd": float(usd(total)),  # display; the exact figure is the micro-USD integer
        "requests": sum(g["requests"] for g in groups.values()),
        "unpriced_requests": sum(g["unpriced_requests"] for g in groups.values()),
        "refused": sum(g["refused"] for g in groups.values()),
        **{name: sum(g[name] for g in groups.values()) for name in TOTALS},
        "groups": rows,
    }
