// The Admin page's budgets card: set a pool's token capacity and USD budget or a key's USD budget (amount,
// period, timezone, alert thresholds), and list every budget of every tenant (GET /admin/budgets).
// Fields left empty stay as stored (the admin API's rule); the gateway checks the values and its 400 is
// shown in words, so nothing here second-guesses a timezone or an amount.

import {request} from "./api.js";
import {count, field, h, resetTime, table, usd} from "./dom.js";

const PERIODS = [["", "(unchanged)"], ["none", "none (never resets)"], ["daily", "daily"], ["weekly", "weekly"],
  ["monthly", "monthly"]];

function input(id, attrs = {}) {
  return h("input", {id, testid: id, type: "text", spellcheck: "false", autocomplete: "off", ...attrs});
}

/** A number as typed, as a JSON number; anything else goes as typed and the gateway explains it. */
function numeric(text) {
  return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

function zones() {
  let names = [];
  try {
    names = Intl.supportedValuesOf("timeZone");
  } catch {
    names = ["UTC"];
  }
  return h("datalist", {id: "admin-budget-zones"}, ["UTC", ...names].map((z) => h("option", {value: z})));
}

/** The body of a PUT from the form's text, or a sentence saying what is missing. */
export function budgetBody(scope, values) {
  const body = {};
  const {tokens, amount, period, timezone, alerts} = values;
  if (tokens !== "") {
    if (scope === "key") return "A key has no token capacity of its own: set tokens on its pool.";
    body.tokens = /^unlimited$/i.test(tokens) ? null : numeric(tokens);
  }
  if (amount !== "") body.usd = /^none$/i.test(amount) ? null : numeric(amount);
  if (period !== "") body.period = period;
  if (timezone !== "") body.timezone = timezone;
  if (alerts !== "") {
    body.alert_at = /^none$/i.test(alerts) ? [] : alerts.split(",").map((a) => a.trim()).filter(Boolean).map(numeric);
  }
  if (!Object.keys(body).length) return "Give at least one of tokens, USD amount, period, timezone or alert thresholds.";
  return body;
}

export function budgetForm(banner, reload) {
  const scope = h("select", {id: "admin-budget-scope", testid: "admin-budget-scope"},
    h("option", {value: "pool"}, "a pool (all its keys)"), h("option", {value: "key"}, "one key"));
  const tenant = input("admin-budget-tenant");
  const pool = input("admin-budget-pool", {placeholder: "default"});
  const key = input("admin-budget-key", {placeholder: "key_…"});
  const tokens = input("admin-budget-tokens", {inputmode: "numeric", placeholder: "unchanged (or: unlimited)"});
  const amount = input("admin-budget-usd", {inputmode: "decimal", placeholder: "unchanged (or: none)"});
  const period = h("select", {id: "admin-budget-period", testid: "admin-budget-period"},
    PERIODS.map(([value, label]) => h("option", {value}, label)));
  const timezone = input("admin-budget-timezone", {list: "admin-budget-zones", placeholder: "unchanged (new: UTC)"});
  const alerts = input("admin-budget-alerts", {placeholder: "e.g. 50,80,100 (or: none)"});
  const poolFields = [field("Tenant", tenant), field("Pool", pool), field("Tokens", tokens)];
  const keyFields = [field("Key id", key)];
  const toggle = () => {
    for (const f of poolFields) f.hidden = scope.value !== "pool";
    for (const f of keyFields) f.hidden = scope.value !== "key";
  };
  scope.addEventListener("change", toggle);
  toggle();
  // novalidate: what is wrong is said in words (by the checks below or the gateway), not by a browser bubble
  return h("form", {class: "grid", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    banner.clear();
    const text = (control) => control.value.trim();
    let path;
    if (scope.value === "key") {
      if (!text(key)) return banner.show("A key budget needs the key id.");
      path = `admin/keys/${encodeURIComponent(text(key))}/budget`;
    } else {
      if (!text(tenant)) return banner.show("A budget needs a tenant.");
      path = `admin/budgets/${encodeURIComponent(text(tenant))}/${encodeURIComponent(text(pool) || "default")}`;
    }
    const body = budgetBody(scope.value, {tokens: scope.value === "pool" ? text(tokens) : "", amount: text(amount),
      period: period.value, timezone: text(timezone), alerts: text(alerts)});
    if (typeof body === "string") return banner.show(body);
    try {
      await request(path, {method: "PUT", body});
      await reload();
    } catch (err) {
      banner.show(err.message);
    }
  }}, field("Budget of", scope), ...poolFields, ...keyFields, field("USD per period", amount),
  field("Period", period), field("Timezone (IANA)", timezone), field("Alert at (% of the budget)", alerts), zones(),
  h("div", {class: "actions"}, h("button", {type: "submit", testid: "admin-set-budget"}, "Set budget")));
}

/** Every budget (GET /admin/budgets "budgets": token pools and USD budgets, each with its tenant). */
export function budgetsTable(budgets) {
  const rows = budgets.map((b) => {
    const money = b.kind === "usd";
    const fmt = (v) => (v === null || v === undefined ? "unlimited" : money ? usd(v, true) : `${count(v)} tokens`);
    const period = b.period && b.period !== "none" ? `${b.period} (${b.timezone})` : "none";
    const cell = (v) => h("td", {class: "num"}, v);
    return h("tr", {testid: "admin-budget-row", "data-tenant": b.tenant, "data-kind": b.kind || "tokens",
      "data-scope": b.scope, "data-name": b.name},
    h("td", {}, b.tenant), h("td", {}, `${b.scope === "key" ? "key" : "pool"} ${b.name}`),
    h("td", {}, money ? "USD" : "tokens"), h("td", {}, period), cell(fmt(b.spent)), cell(fmt(b.reserved)),
    cell(b.limit === null || b.limit === undefined ? "unlimited" : fmt(b.remaining)), cell(fmt(b.limit)),
    h("td", {}, b.resets_at ? resetTime(b.resets_at, b.timezone) : "never"),
    h("td", {}, b.alert_at && b.alert_at.length ? b.alert_at.map((p) => `${p}%`).join(", ") : "—"));
  });
  return table(null, ["Tenant", "Budget", "Kind", "Period", "Spent", "Reserved", "Remaining", "Limit", "Resets",
    "Alerts"], rows, "No budgets set.");
}
