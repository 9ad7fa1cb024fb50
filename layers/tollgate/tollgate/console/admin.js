// The Admin page (admin key): tenants and their spend, keys (create, list, revoke), budgets (set),
// rate limits (set, clear), provider and deployment health.

import {budgetForm, budgetsTable} from "./admin_budgets.js";
import {getJson, request} from "./api.js";
import {count, field, h, replace, table, usd, when} from "./dom.js";

function input(id, attrs = {}) {
  return h("input", {id, type: "text", spellcheck: "false", autocomplete: "off", ...attrs});
}

function card(title, id, ...children) {
  return h("section", {class: "card", "aria-labelledby": id}, h("h2", {id}, title), ...children);
}

function tenantsView(keys, costs, budgets) {
  const rows = new Map();
  const row = (t) => rows.get(t) || rows.set(t, {keys: 0, requests: 0, micro: 0, budgets: 0}).get(t);
  for (const k of keys) if (!k.revoked_at) row(k.tenant).keys += 1;
  for (const b of budgets) row(b.tenant).budgets += 1;
  for (const g of costs.groups || []) {  // GET /admin/costs?group_by=tenant: one group per tenant
    const r = row(g.group);
    r.requests += g.requests;
    r.micro += g.cost_micro_usd;
  }
  const sorted = [...rows.entries()].sort(([a], [b]) => a.localeCompare(b));
  return table(null, ["Tenant", "Active keys", "Budgets", "Requests", "Spend"],
    sorted.map(([t, r]) => h("tr", {testid: "tenant-row"}, h("td", {}, t), h("td", {class: "num"}, count(r.keys)),
      h("td", {class: "num"}, count(r.budgets)), h("td", {class: "num"}, count(r.requests)),
      h("td", {class: "num"}, usd(r.micro, true)))), "No tenants yet.");
}

function health(p) {
  if (p.configured === false) return "not configured";
  if (p.consecutive_failures) return `failing (${p.consecutive_failures} in a row)`;
  if (p.last_success_at) return "healthy";
  return p.healthy === false ? "unhealthy" : "no traffic yet";
}

function providerRows(providers) {
  const rows = [];
  const row = (name, p) => h("tr", {testid: "provider-row"},
    h("td", {}, name), h("td", {}, health(p)), h("td", {}, p.default_model || p.model || "—"),
    h("td", {}, when(p.last_success_at)), h("td", {class: "num"}, p.last_latency_ms == null ? "—" : `${Math.round(p.last_latency_ms)} ms`),
    h("td", {}, p.last_error ? String(p.last_error) : "—"));
  for (const p of providers) {
    rows.push(row(p.provider || p.name, p));
    for (const d of Array.isArray(p.deployments) ? p.deployments : []) {
      rows.push(row(`  ↳ ${d.name || d.id || d.model || "deployment"}`, d));
    }
  }
  return rows;
}

/** Every item of a paged admin listing (GET /admin/keys, /admin/budgets: at most 1000 keys or tenants
 * a page, and next_after), page by page. */
async function everyPage(path, field) {
  const found = [];
  for (let after = null; ;) {
    const page = await getJson(after ? `${path}?after=${encodeURIComponent(after)}` : path);
    found.push(...(page[field] || []));
    if (!page.next_after) return found;
    after = page.next_after;
  }
}

export class AdminPage {
  constructor(root, banner) {
    this.root = root;
    this.banner = banner;
    this.created = null;
  }

  async show() {
    this.banner.clear();
    this.body = {tenants: h("div"), keys: h("div"), budgets: h("div"), limits: h("div"), providers: h("div"),
      audit: h("div")};
    const refresh = h("button", {type: "button", class: "secondary", onclick: () => this.show()}, "Refresh");
    replace(this.root, h("div", {class: "page-head"}, h("h1", {}, "Admin"), refresh),
      card("Tenants", "admin-tenants", this.body.audit, this.body.tenants),
      card("Keys", "admin-keys", this.keyForm(), this.secretBox = h("div"), this.body.keys),
      card("Budgets", "admin-budgets", budgetForm(this.banner, () => this.reload()), this.body.budgets),
      card("Rate limits", "admin-limits", this.limitForm(), this.body.limits),
      card("Providers", "admin-providers", this.body.providers));
    await this.reload();
  }

  /** Each card loads on its own: one failing endpoint (say /diagnostics behind an edge authorizer that
   * knows only tenant keys) leaves the others working and says what failed. */
  async reload() {
    await Promise.all([
      this.load([this.body.tenants, this.body.keys, this.body.budgets], async () => {
        const [keys, costs, budgets] = await Promise.all([
          everyPage("admin/keys", "keys"), getJson("admin/costs?group_by=tenant"),
          everyPage("admin/budgets", "budgets")]);
        const allKeys = keys;
        const allBudgets = budgets;
        replace(this.body.tenants, tenantsView(allKeys, costs, allBudgets));
        replace(this.body.keys, this.keysTable(allKeys));
        replace(this.body.budgets, budgetsTable(allBudgets));
      }),
      this.load([this.body.limits], async () => {
        const limits = await getJson("admin/limits");
        replace(this.body.limits, this.limitsTable(limits.limits || []));
      }),
      this.load([this.body.providers], async () => {
        const providers = await getJson("diagnostics/providers");
        replace(this.body.providers, table(null,
          ["Provider", "Health", "Model", "Last success", "Latency", "Last error"],
          providerRows(providers.providers || []), "No providers."));
      }),
      this.load([this.body.audit], async () => {
        const audit = await getJson("admin/audit/verify");
        replace(this.body.audit, h("p", {testid: "admin-audit-status", class: audit.valid ? "ok" : "bad"},
          audit.valid ? "Every tenant's audit chain verifies." : "An audit chain is BROKEN: run tollgate audit verify."));
      }),
    ]);
  }

  async load(targets, work) {
    try {
      await work();
    } catch (err) {
      for (const target of targets) replace(target, h("p", {class: "bad"}, err.message));
      this.banner.show(err.message);
    }
  }

  keyForm() {
    const tenant = input("admin-new-key-tenant", {testid: "admin-new-key-tenant", required: true});
    const name = input("admin-new-key-name");
    const models = input("admin-new-key-models", {placeholder: "all models"});
    const pool = input("admin-new-key-pool", {placeholder: "default"});
    const submit = h("button", {type: "submit", testid: "admin-create-key"}, "Create key");
    return h("form", {class: "grid", onsubmit: (e) => {
      e.preventDefault();
      this.createKey({tenant: tenant.value.trim(), name: name.value.trim(), models: models.value, pool: pool.value.trim()});
    }}, field("Tenant", tenant), field("Name (optional)", name),
    field("Models (comma separated, optional)", models), field("Budget pool (optional)", pool),
    h("div", {class: "actions"}, submit));
  }

  async createKey({tenant, name, models, pool}) {
    this.banner.clear();
    if (!tenant) return this.banner.show("A key needs a tenant.");
    const body = {tenant};
    if (name) body.name = name;
    if (pool) body.pool = pool;
    const list = models.split(",").map((m) => m.trim()).filter(Boolean);
    if (list.length) body.models = list;
    try {
      const created = await (await request("admin/keys", {method: "POST", body})).json();
      this.showSecret(created);
      await this.reload();
    } catch (err) {
      this.banner.show(err.message);
    }
  }

  showSecret(created) {
    const secret = h("code", {testid: "admin-new-key-secret", class: "secret"}, created.key);
    const copy = h("button", {type: "button", class: "secondary", onclick: async () => {
      try {
        await navigator.clipboard.writeText(created.key);
        copy.textContent = "Copied";
      } catch {
        getSelection().selectAllChildren(secret);
        copy.textContent = "Selected: press Ctrl+C";
      }
    }}, "Copy");
    const done = h("button", {type: "button", class: "quiet", onclick: () => replace(this.secretBox)}, "Done");
    replace(this.secretBox, h("div", {class: "notice", role: "status"},
      h("p", {}, `New key ${created.key_id} for tenant ${created.tenant}. It is shown only this once:`),
      h("div", {class: "secret-line"}, secret, copy, done)));
  }

  keysTable(keys) {
    const rows = keys.map((k) => {
      const revoke = h("button", {type: "button", class: "danger", "aria-label": `Revoke key ${k.key_id}`,
        onclick: () => this.revoke(k.key_id)}, "Revoke");
      const status = k.revoked_at ? h("span", {}, "revoked ", when(k.revoked_at)) : "active";
      return h("tr", {testid: "key-row", "data-key-id": k.key_id},
        h("td", {}, h("code", {}, k.key_id)), h("td", {}, k.tenant), h("td", {}, k.name || "—"),
        h("td", {}, k.models ? k.models.join(", ") : "all"), h("td", {}, k.pool || "default"),
        h("td", {}, when(k.created_at)), h("td", {}, k.expires_at ? when(k.expires_at) : "never"),
        h("td", {}, status), h("td", {}, k.revoked_at ? "" : revoke));
    });
    return table(null, ["Key id", "Tenant", "Name", "Models", "Pool", "Created", "Expires", "Status", ""],
      rows, "No keys yet.");
  }

  async revoke(keyId) {
    try {
      await request(`admin/keys/${encodeURIComponent(keyId)}/revoke`, {method: "POST"});
      await this.reload();
    } catch (err) {
      this.banner.show(err.message);
    }
  }

  limitForm() {
    const tenant = input("admin-limit-tenant", {testid: "admin-limit-tenant", required: true});
    const key = input("admin-limit-key", {testid: "admin-limit-key", placeholder: "the whole tenant"});
    const number = (id) => input(id, {testid: id, type: "number", min: 1, step: 1, placeholder: "no limit"});
    const rpm = number("admin-limit-rpm");
    const tpm = number("admin-limit-tpm");
    // novalidate: a bad number is explained in words by the check below, not by the browser's bubble
    return h("form", {class: "grid", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      this.banner.clear();
      const t = tenant.value.trim();
      const k = key.value.trim();
      if (!t) return this.banner.show("A rate limit needs a tenant.");
      const body = {};
      for (const [name, control] of [["rpm", rpm], ["tpm", tpm]]) {
        const text = control.value.trim();
        if (text === "") continue;
        const value = Number(text);
        if (!Number.isInteger(value) || value < 1) return this.banner.show(`${name.toUpperCase()} must be a whole number of at least 1.`);
        body[name] = value;
      }
      if (!Object.keys(body).length) return this.banner.show("Give requests per minute, tokens per minute or both.");
      const path = `admin/limits/${encodeURIComponent(t)}${k ? `/keys/${encodeURIComponent(k)}` : ""}`;
      try {
        await request(path, {method: "PUT", body});
        await this.reload();
      } catch (err) {
        this.banner.show(err.message);
      }
    }}, field("Tenant", tenant), field("Key id (optional)", key), field("Requests per minute", rpm),
    field("Tokens per minute", tpm), h("div", {class: "actions"},
      h("button", {type: "submit", testid: "admin-set-limit"}, "Set limits")));
  }

  limitsTable(limits) {
    const rows = limits.map((l) => {
      const scope = l.key_id ? `key ${l.key_id}` : "tenant";
      const path = `admin/limits/${encodeURIComponent(l.tenant)}${l.key_id ? `/keys/${encodeURIComponent(l.key_id)}` : ""}`;
      const clear = h("button", {type: "button", class: "danger", "aria-label": `Clear the limits of ${l.tenant} ${scope}`,
        onclick: async () => {
          try {
            await request(path, {method: "DELETE"});
            await this.reload();
          } catch (err) {
            this.banner.show(err.message);
          }
        }}, "Clear");
      return h("tr", {testid: "admin-limit-row"}, h("td", {}, l.tenant), h("td", {}, scope),
        h("td", {class: "num"}, l.rpm == null ? "—" : count(l.rpm)),
        h("td", {class: "num"}, l.tpm == null ? "—" : count(l.tpm)), h("td", {}, clear));
    });
    return table(null, ["Tenant", "Scope", "Requests / min", "Tokens / min", ""], rows, "No rate limits set.");
  }
}
