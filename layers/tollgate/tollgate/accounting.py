"""Money and tokens, independent of the store: reservation estimates, pricing, cost aggregation.

Money is integer micro-USD everywhere (USD per million tokens is exactly micro-USD per token, so a
price table in USD/M multiplies straight into micro-USD); prices are Decimals from JSON text, never floats.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from .providers.base import ChatCall
from .store.base import ABANDONED, AuditEntry

LOCAL_PROVIDERS = frozenset({"ollama", "llama_cpp"})
_REGION_PREFIX = re.compile(r"^(us|eu|apac|au|ca|jp|us-gov|global)\.")
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8})$")
_PER_MESSAGE_TOKENS = 8
_BASE_TOKENS = 16
Price = tuple[Decimal, Decimal]  # USD per million tokens: input, output


def reservation_estimate(call: ChatCall) -> int:
    """An upper bound on the tokens a call can use: every prompt byte as a token (no tokenizer has
    tokens shorter than a byte), chat-template framing per message, plus the max_tokens sent upstream."""
    request = call.request
    prompt_bytes = sum(len(m.text().encode()) for m in request.messages)
    prompt_bytes += sum(
        len(c.function.arguments.encode()) for m in request.messages for c in m.tool_calls or ()
    )
    if request.tools:
        prompt_bytes += len(json.dumps([t.model_dump(exclude_none=True) for t in request.tools]).encode())
    return prompt_bytes + _PER_MESSAGE_TOKENS * len(request.messages) + _BASE_TOKENS + call.max_tokens


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
            return (Decimal(0), Decimal(0))
        models = self._table.get(provider, {})
        bare = _REGION_PREFIX.sub("", model)
        for candidate in (model, bare, _DATE_SUFFIX.sub("", bare)):
            if candidate in models:
                return models[candidate]
        return None

    def cost_micro_usd(
        self, provider: str, model: str, prompt_tokens: int, completion_tokens: int
    ) -> int | None:
        """The cost in integer micro-USD, or None when the model is not priced (never guessed)."""
        price = self.price(provider, model)
        if price is None:
            return None
        exact = Decimal(prompt_tokens) * price[0] + Decimal(completion_tokens) * price[1]
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _parse(raw: dict[str, Any]) -> dict[str, dict[str, Price]]:
    table: dict[str, dict[str, Price]] = {}
    for provider, models in raw.items():
        if provider.startswith("_"):
            continue
        if not isinstance(models, dict):
            raise ValueError(f"pricing: {provider} must map model names to [input, output]")
        table[provider] = {name: (Decimal(str(p[0])), Decimal(str(p[1]))) for name, p in models.items()}
    return table


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
    """Totals and groups for GET /v1/costs and ``tollgate costs``."""
    groups: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in without_superseded(entries):
        group = groups[_group_key(entry, group_by)]
        group["requests"] += 1
        group["prompt_tokens"] += entry.prompt_tokens
        group["completion_tokens"] += entry.completion_tokens
        group["cost_micro_usd"] += entry.cost_micro_usd or 0
        group["unpriced_requests"] += entry.cost_micro_usd is None
    total = sum(g["cost_micro_usd"] for g in groups.values())
    rows = [
        {"group": name, **values, "cost_usd": float(usd(values["cost_micro_usd"]))}
        for name, values in sorted(groups.items())
    ]
    return {
        "group_by": group_by,
        "total_cost_micro_usd": total,
        "total_cost_usd": float(usd(total)),  # display; the exact figure is the micro-USD integer
        "requests": sum(g["requests"] for g in groups.values()),
        "unpriced_requests": sum(g["unpriced_requests"] for g in groups.values()),
        "groups": rows,
    }
