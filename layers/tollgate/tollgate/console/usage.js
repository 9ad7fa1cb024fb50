// The Usage page: spend per day, tokens per model, budgets, rate limits, last requests, audit status.
// Everything shown comes from the gateway's answers; a section whose endpoint fails says so in words.

import {getJson, getOptional, seen} from "./api.js";
import {spendChart} from "./chart.js";
import {count, h, num, replace, resetTime, table, usd, when} from "./dom.js";

const RECENT = 20;

function section(title, id) {
  const body = h("div", {class: "section-body"}, h("p", {class: "muted"}, "Loading…"));
  const el = h("section", {class: "card", "aria-labelledby": id}, h("h2", {id}, title), body);
  return {el, body};
}

function bar(used, capacity, fmt = count) {
  if (capacity === null || capacity === undefined) return h("span", {class: "muted"}, "unlimited");
  const value = Math.min(Math.max(Number(used) || 0, 0), Number(capacity));
  return h("progress", {max: capacity, value, "aria-label": `${fmt(value)} of ${fmt(capacity)} used`});
}

/** One budget: a /v1/budgets object (kind tokens|usd, amounts in tokens or micro-USD), or, from a gateway
 * without /v1/budgets, a token pool (/v1/tokens/pools). */
export function budgetRow(b) {
  const name = b.kind ? `${b.scope === "key" ? "key" : "pool"} ${b.name}` : b.pool ?? b.name ?? "budget";
  const money = b.kind === "usd";
  const spent = b.kind ? b.spent : b.used;
  const limit = b.kind ? b.limit : b.capacity;
  const fmt = (v) => (v === null || v === undefined ? "—" : money ? usd(v, true) : `${count(v)} tokens`);
  const period = b.period && b.period !== "none" ? `${b.period}, ` : "";
  const resets = b.resets_at ? h("span", {}, period, "resets at ", resetTime(b.resets_at, b.timezone)) : "no period";
  return h("tr", {testid: "budget-row", "data-kind": b.kind || "tokens"},
    h("td", {}, String(name)), h("td", {class: "num"}, fmt(spent)),
    h("td", {class: "num"}, limit === null || limit === undefined ? "unlimited" : fmt(limit)),
    h("td", {class: "num"}, limit === null || limit === undefined ? "unlimited" : fmt(b.remaining)),
    h("td", {}, resets), h("td", {}, bar(spent, limit, fmt)));
}

const KINDS = [["requests", "Requests per minute"], ["tokens", "Tokens per minute"]];

/** The caller's rate limits: /v1/limits (each limit with this minute's use), or, from a gateway without it,
 * the x-ratelimit-* headers seen on its answers. One row per limit and kind. */
function limitsView(limits) {
  const rows = [];
  if (Array.isArray(limits)) {
    for (const l of limits) {
      const scope = l.scope === "key" ? `key ${l.key_id}` : "tenant";
      for (const [kind, label] of KINDS) {
        const w = l[kind];
        if (!w) continue;
        rows.push(h("tr", {testid: "limit-row", "data-kind": kind, "data-scope": l.scope},
          h("td", {}, `${label} (${scope})`), h("td", {class: "num"}, count(w.limit)),
          h("td", {class: "num"}, count(w.remaining)), h("td", {}, when(w.resets_at)),
          h("td", {}, bar(w.used, w.limit))));
      }
    }
  } else {
    for (const [kind, label] of KINDS) {
      const limit = limits[`limit-${kind}`];
      if (limit !== undefined) rows.push(h("tr", {testid: "limit-row", "data-kind": kind},
        h("td", {}, label), h("td", {class: "num"}, limit), h("td", {class: "num"}, limits[`remaining-${kind}`] ?? "—"),
        h("td", {}, `in ${limits[`reset-${kind}`] ?? "—"}`), h("td", {})));
    }
  }
  if (!rows.length) return h("p", {testid: "rate-limits"}, "No rate limits.");
  return h("div", {testid: "rate-limits"}, table(null, ["Limit", "Allowed", "Remaining", "Resets", "Used"], rows));
}

function requestRow(e) {
  return h("tr", {testid: "request-row"},
    h("td", {}, when(e.at)), h("td", {}, e.model), h("td", {}, e.provider),
    h("td", {class: "num"}, count(Number(e.prompt_tokens) + Number(e.completion_tokens))),
    h("td", {class: "num"}, usd(e.cost_micro_usd, true)), h("td", {}, e.status));
}

function auditStatus(v) {
  const text = v.valid
    ? `Audit chain verified: ${v.entries} entr${v.entries === 1 ? "y" : "ies"}, intact.`
    : `Audit chain BROKEN at entry ${v.first_bad_seq}${v.segment ? ` of segment ${v.segment}` : ""}: ${v.problem}.`;
  return h("p", {testid: "audit-status", class: v.valid ? "ok" : "bad"}, text);
}

export class UsagePage {
  constructor(root, banner) {
    this.root = root;
    this.banner = banner;
  }

  async show() {
    const spend = section("Spend per day", "usage-spend");
    const models = section("Tokens per model", "usage-models");
    const budgets = section("Budgets", "usage-budgets");
    const limits = section("Rate limits", "usage-limits");
    const recent = section("Last requests", "usage-recent");
    const refresh = h("button", {type: "button", class: "secondary", onclick: () => this.show()}, "Refresh");
    replace(this.root, h("div", {class: "page-head"}, h("h1", {}, "Usage"), refresh),
      spend.el, budgets.el, h("div", {class: "two"}, limits.el, models.el), recent.el);
    // /v1/budgets (USD budgets with periods) is optional: null where the gateway has none
    const extra = getOptional("v1/budgets");
    extra.catch(() => null); // its failure is shown by the sections that use it
    await Promise.all([
      this.load(spend.body, () => getJson("v1/costs?group_by=day"), (d) => spendChart(d.groups || [])),
      this.load(models.body, () => getJson("v1/costs?group_by=model"), (d) => table(null,
        ["Model", "Requests", "Prompt tokens", "Completion tokens", "Cost"],
        (d.groups || []).map((g) => [g.group, num(count(g.requests)), num(count(g.prompt_tokens)),
          num(count(g.completion_tokens)), num(usd(g.cost_micro_usd, true))]), "No requests yet.")),
      this.load(budgets.body, () => this.budgets(extra), (rows) => table(null,
        ["Budget", "Spent", "Limit", "Remaining", "Period", "Used"], rows.map(budgetRow), "No budgets set.")),
      this.load(limits.body, () => getOptional("v1/limits"), (d) => limitsView(
        d ? d.limits || [] : seen.rateLimits)),
      this.load(recent.body, () => this.recent(), ({entries, verification}) => h("div", {},
        auditStatus(verification),
        table(null, ["Time", "Model", "Provider", "Tokens", "Cost", "Status"],
          entries.map(requestRow), "No requests yet."))),
    ]);
  }

  async load(body, fetcher, view) {
    try {
      replace(body, view(await fetcher()));
    } catch (err) {
      replace(body, h("p", {class: "bad"}, err.message));
      this.banner.show(err.message);
    }
  }

  /** /v1/budgets lists every budget of the key (its pools' tokens too); an older gateway has only pools. */
  async budgets(extra) {
    const budgets = await extra;
    if (budgets && Array.isArray(budgets.budgets)) return budgets.budgets;
    const pools = await getJson("v1/tokens/pools");
    return (pools && pools.pools) || [];
  }

  /** The newest entries across the tenant's audit segments (one call), newest first. */
  async recent() {
    const page = await getJson(`v1/audit?limit=${RECENT}`);
    return {entries: (page.entries || []).slice().reverse(), verification: page.verification};
  }
}
