// The Usage page: spend per day, tokens per model, budgets, rate limits, last requests, audit status.
// Everything shown comes from the gateway's answers; a section whose endpoint fails says so in words.

import {getJson, getOptional, seen} from "./api.js";
import {spendChart} from "./chart.js";
import {count, h, num, replace, table, usd, when} from "./dom.js";

const RECENT = 20;

function section(title, id) {
  const body = h("div", {class: "section-body"}, h("p", {class: "muted"}, "Loading…"));
  const el = h("section", {class: "card", "aria-labelledby": id}, h("h2", {id}, title), body);
  return {el, body};
}

function bar(used, capacity) {
  if (capacity === null || capacity === undefined) return h("span", {class: "muted"}, "unlimited");
  const value = Math.min(Math.max(Number(used) || 0, 0), Number(capacity));
  return h("progress", {max: capacity, value, "aria-label": `${value} of ${capacity} used`});
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
  const resets = b.resets_at ? h("span", {}, period, "resets at ", when(b.resets_at)) : "no period";
  return h("tr", {testid: "budget-row", "data-kind": b.kind || "tokens"},
    h("td", {}, String(name)), h("td", {class: "num"}, fmt(spent)),
    h("td", {class: "num"}, limit === null || limit === undefined ? "unlimited" : fmt(b.remaining)),
    h("td", {}, resets), h("td", {}, bar(spent, limit)));
}

function limitsView(limits) {
  const rows = [];
  if (Array.isArray(limits)) {
    for (const l of limits) rows.push([String(l.name ?? l.kind ?? l.scope ?? "limit"), String(l.limit ?? "—"),
      String(l.remaining ?? "—"), l.resets_at ? when(l.resets_at) : String(l.reset ?? "—")]);
  } else {
    for (const kind of ["requests", "tokens"]) {
      const limit = limits[`limit-${kind}`];
      if (limit !== undefined) rows.push([kind, limit, limits[`remaining-${kind}`] ?? "—", limits[`reset-${kind}`] ?? "—"]);
    }
  }
  if (!rows.length) return h("p", {testid: "rate-limits"}, "No rate limits.");
  return h("div", {testid: "rate-limits"}, table(null, ["Limit", "Allowed", "Remaining", "Resets"], rows));
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
      spend.el, h("div", {class: "two"}, budgets.el, limits.el), models.el, recent.el);
    // /v1/budgets (USD budgets with periods, rate limits) is optional: null where the gateway has none
    const extra = getOptional("v1/budgets");
    extra.catch(() => null); // its failure is shown by the sections that use it
    await Promise.all([
      this.load(spend.body, () => getJson("v1/costs?group_by=day"), (d) => spendChart(d.groups || [])),
      this.load(models.body, () => getJson("v1/costs?group_by=model"), (d) => table(null,
        ["Model", "Requests", "Prompt tokens", "Completion tokens", "Cost"],
        (d.groups || []).map((g) => [g.group, num(count(g.requests)), num(count(g.prompt_tokens)),
          num(count(g.completion_tokens)), num(usd(g.cost_micro_usd, true))]), "No requests yet.")),
      this.load(budgets.body, () => this.budgets(extra), (rows) => table(null,
        ["Budget", "Spent", "Remaining", "Period", "Used"], rows.map(budgetRow), "No budgets set.")),
      this.load(limits.body, () => extra, (d) => limitsView(
        (d && (d.rate_limits || d.limits)) || seen.rateLimits)),
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
