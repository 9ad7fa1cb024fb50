"""Money and tokens, independent of the store: reservation estimates (``prompt_bound``, re-exported here),
pricing, cost aggregation.

Money is integer micro-USD everywhere (USD per million tokens is exactly micro-USD per token, so a
price table in USD/M multiplies straight into micro-USD); prices are Decimals from JSON text, never floats.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from . import tool_fees
from .prompt_bound import PromptBound as PromptBound
from .prompt_bound import image_token_bound as image_token_bound
from .prompt_bound import reservation_estimate as reservation_estimate
from .providers.base import Usage
from .providers.catalog import LOCAL_PROVIDERS
from .store.audit_base import ABANDONED, AuditEntry
from .store.rollup_base import COUNTERS, TOKEN_PARTS
from .tool_fees import ToolUses

_REGION_PREFIX = re.compile(r"^(us|eu|apac|au|ca|jp|us-gov|global)\.")
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8})$")


@dataclass(frozen=True, slots=True)
class Price:
    """One model's rates, USD per million tokens. A rate the table leaves out takes the one it is a kind
    of: cache reads and cache writes the input rate, reasoning the output rate. A 1-hour cache write
    (Anthropic's ``ttl: "1h"``, reported only by Anthropic and Bedrock's Claude) left out costs what
    Anthropic bills for it, twice the input rate (its 5-minute write, ``cache_write``, is 1.25 times),
    when the entry prices cache writes, else the input rate like the other cache rates (so a model whose
    cache is not priced keeps the bound it had).

    ``long_context`` (threshold, rates): a request whose input (``prompt_tokens``: cache reads and writes
    included) is above the threshold is billed at those rates for all its tokens, input and output
    (Anthropic's Sonnet 4 and 4.5 above 200K input tokens, with the 1M-context beta)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal
    cache_write_1h: Decimal
    long_context: tuple[int, Price] | None = None
    # micro-USD per billed tool use (``tool_fees``): a web search (Anthropic's server tool, OpenAI's hosted
    # one), an OpenAI ``web_search_preview`` search (None: the web search fee), an OpenAI file search.
    # None: the model's entry gives no fee, so a USD budget refuses the tool (``Budgets.cost_bound``)
    web_search: Decimal | None = None
    web_search_preview: Decimal | None = None
    file_search: Decimal | None = None

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

    def highest(self, tokens: int = 0) -> Decimal:
        """The most one token of a request of at most ``tokens`` tokens (input and output) can cost
        (micro-USD): what an upper bound on its cost uses. The long-context rates count only where the
        input can pass their threshold."""
        rates = (
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.reasoning,
            self.cache_write_1h,
        )
        if self.long_context is not None and tokens > self.long_context[0]:
            return max(*rates, self.long_context[1].highest())
        return max(rates)

    def cost(self, usage: Usage) -> Decimal:
        """Exact micro-USD: each token at one rate. ``prompt_tokens`` holds the cache reads and writes and
        ``completion_tokens`` the reasoning (``providers.base.Usage``), so those parts are taken out of
        them first (and capped at them, should an upstream report more), never charged twice; the
        writes' 1-hour part is taken out of the writes the same way. Above ``long_context``'s threshold
        every token is at its rates."""
        searches = (  # a fee the entry does not give counts 0 (a USD budget refused the tool before)
            Decimal(usage.web_search_requests) * (self.web_search or 0)
            + Decimal(usage.web_search_preview_requests) * (self.preview_fee or 0)
            + Decimal(usage.file_search_calls) * (self.file_search or 0)
        )
        if self.long_context is not None and usage.prompt_tokens > self.long_context[0]:
            return self.long_context[1].cost(usage) + searches
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
            + searches
        )

    @property
    def preview_fee(self) -> Decimal | None:
        return self.web_search if self.web_search_preview is None else self.web_search_preview

    def fee(self, kind: str) -> Decimal | None:
        """The fee of one use of a billed tool of ``kind`` (``tool_fees``); None where the entry gives none,
        and for the kinds tollgate cannot price (``tool_fees.UNPRICED``)."""
        if kind == "web_search_preview":
            return self.preview_fee
        return {"web_search": self.web_search, "file_search": self.file_search}.get(kind)

    def bound(self, tokens: int, uses: ToolUses | None = None) -> Decimal:
        """The most a request of at most ``tokens`` tokens and ``uses`` billed tool uses can cost (each use
        at the dearest fee among its kinds; the caller refuses kinds with no price first)."""
        if uses is None:
            return tokens * self.highest(tokens)
        fee = max((self.fee(kind) or Decimal(0) for kind in uses.kinds), default=Decimal(0))
        return tokens * self.highest(tokens) + uses.calls * fee


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


def _price(value: Any, where: str, *, tiered: bool = True) -> Price:
    """``[input, output]`` (optionally ``cache_read, cache_write, reasoning, cache_write_1h`` after them;
    null or left out: the default) or an object with those names; input and output are required. The
    object may also hold ``long_context``: ``{"above": input tokens, "rates": the same shape}``, and the
    fees of billed tools (``tool_fees.PRICED``: ``web_search``, ``web_search_preview``, ``file_search``),
    USD per 1,000 uses."""
    names = (*RATE_NAMES, "long_context", *tool_fees.PRICED) if tiered else RATE_NAMES
    if isinstance(value, list) and 2 <= len(value) <= len(RATE_NAMES):
        named = dict(zip(RATE_NAMES, value, strict=False))
    elif isinstance(value, dict) and not set(value) - set(names):
        named = value
    else:
        raise ValueError(
            f"pricing: {where} must be [input, output, cache_read?, cache_write?, reasoning?, "
            f"cache_write_1h?] or an object with keys {', '.join(names)}"
        )
    rates = {name: _rate(named.get(name), f"{where}.{name}") for name in RATE_NAMES}
    input_rate, output_rate = rates.pop("input"), rates.pop("output")
    if input_rate is None or output_rate is None:
        raise ValueError(f"pricing: {where} needs both an input and an output rate")
    price = Price.of(input_rate, output_rate, **rates)
    per_thousand = {fee: _rate(named.get(fee), f"{where}.{fee}") for fee in tool_fees.PRICED}  # USD / 1,000
    preview = per_thousand["web_search_preview"]
    search, files = per_thousand["web_search"], per_thousand["file_search"]
    price = replace(  # -> micro-USD per use
        price,
        web_search=None if search is None else search * 1000,
        web_search_preview=None if preview is None else preview * 1000,
        file_search=None if files is None else files * 1000,
    )
    if named.get("long_context") is None:
        return price
    return replace(price, long_context=_long_context(named["long_context"], f"{where}.long_context"))


def _long_context(value: Any, where: str) -> tuple[int, Price]:
    above = value.get("above") if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) != {"above", "rates"}:
        raise ValueError(f'pricing: {where} must be {{"above": input tokens, "rates": [input, output, ...]}}')
    if isinstance(above, bool) or not isinstance(above, int) or above < 0:
        raise ValueError(
            f"pricing: {where}.above must be a whole number of input tokens, >= 0; got {above!r}"
        )
    return above, _price(value["rates"], f"{where}.rates", tiered=False)


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
    """The parts of a usage that priced at their own rates (and the web searches, priced per search), for
    an audit entry's ``details`` (only those that are not 0, so entries without them hash as before)."""
    parts = {
        "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "web_search_requests": usage.web_search_requests,
        "web_search_preview_requests": usage.web_search_preview_requests,
        "file_search_calls": usage.file_search_calls,
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
    if group_by == "tenant":
        return entry.tenant
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
