// DOM helpers. Text always goes in as text nodes: nothing here (or anywhere in the console) sets innerHTML.

/**
 * h("button", {type: "button", testid: "send-button", onclick: fn}, "Send") -> element.
 * Attributes: class, testid (data-testid), on* (listeners), hidden/disabled/... (booleans), others as strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "testid") el.dataset.testid = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else if (name === "value") el.value = String(value);
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}

/** A labelled form field: <div class="field"><label for=id>…</label><input id=id …></div>. */
export function field(label, control) {
  return h("div", {class: "field"}, h("label", {for: control.id}, label), control);
}

/** A table with a header row; rows are arrays of cells (strings or nodes) or ready <tr> elements. */
export function table(caption, headers, rows, empty = "Nothing yet.") {
  const body = h("tbody");
  const cell = (c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c));
  for (const row of rows) body.append(row instanceof Node ? row : h("tr", {}, row.map(cell)));
  if (!rows.length) body.append(h("tr", {}, h("td", {colspan: headers.length, class: "muted"}, empty)));
  // a column of numbers (its first cell is class "num") gets a right-aligned heading too
  const first = rows.length && body.rows[0] ? [...body.rows[0].cells] : [];
  const th = (t, i) => h("th", {scope: "col", class: first[i] && first[i].classList.contains("num") ? "num" : null}, t);
  return h("div", {class: "table-wrap"},
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map(th))),
      body));
}

/** A right-aligned table cell for a number. */
export function num(value) {
  return h("td", {class: "num"}, value);
}

/** Integer micro-USD (or a decimal USD string/number) as "$0.000123". */
export function usd(value, micro = false) {
  if (value === null || value === undefined || value === "") return "unpriced";
  const n = micro ? Number(value) / 1e6 : Number(value);
  if (!Number.isFinite(n)) return "unpriced";
  return "$" + n.toFixed(6);
}

export function count(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
}

/** An ISO time (or epoch seconds) as a short local time; the raw value stays in the title. */
export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h("time", {datetime: date.toISOString(), title: date.toISOString()}, date.toLocaleString());
}

/** An ISO instant as "2026-12-01 00:00 Asia/Kolkata" in the given IANA timezone (else the browser's). */
export function localTime(value, timezone = null) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-US", {timeZone: timezone || undefined, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(date);
  } catch {
    return localTime(value, null); // a timezone this browser does not know: the browser's own
  }
  const part = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  const zone = timezone || Intl.DateTimeFormat().resolvedOptions().timeZone;
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute} ${zone}`;
}

/** A period's end: the instant in the budget's own timezone, the UTC instant in the title. */
export function resetTime(value, timezone) {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return h("time", {datetime: date.toISOString(), title: date.toISOString()}, localTime(value, timezone));
}
