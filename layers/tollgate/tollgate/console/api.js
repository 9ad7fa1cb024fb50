// tollgate's JSON APIs, called on this page's own origin with the key from sessionStorage.
// The key goes only into the Authorization header: never into a URL, a cookie or localStorage.

import {localTime} from "./dom.js";

const KEY = "tollgate.key";
// The page is <base>/ui, so the API is "./" relative to it (also under an API Gateway stage: /Prod/ui).
const BASE = new URL("./", document.baseURI);

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

/** What the console has seen in responses so far (the latest x-ratelimit-* headers). */
export const seen = {rateLimits: {}};

export class ApiError extends Error {
  constructor(status, message, code = null, detail = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Seconds (a Retry-After) in words: "7 s", "5 min", "3 h", "4 days". */
function duration(seconds) {
  if (!Number.isFinite(seconds)) return "a while";
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** A budget refusal's "budget" field ({kind, scope, name, period, timezone, resets_at}) in words. */
function budgetWords(budget) {
  if (!budget || typeof budget !== "object") return "Budget exhausted: a budget of this key has run out";
  const kind = budget.kind === "usd" ? "USD" : "token";
  const period = budget.period && budget.period !== "none" ? `${budget.period} ` : "";
  const owner = budget.scope === "key" ? `key ${budget.name}` : `pool ${budget.name}`;
  const resets = budget.resets_at
    ? `it resets at ${localTime(budget.resets_at, budget.timezone)}`
    : "it does not reset (no period): ask an admin to raise it";
  return `Budget exhausted: the ${period}${kind} budget of ${owner} has run out; ${resets}`;
}

/** The OpenAI-shaped error body ({"error": {message, type, code}}) explained in words. */
export function explain(status, body, retryAfter = null) {
  const error = (body && typeof body === "object" && body.error) || {};
  const said = typeof error.message === "string" ? error.message : "";
  const code = typeof error.code === "string" ? error.code : null;
  // a budget's refusal already says when it resets (its Retry-After can be days)
  const resets = code === "budget_exceeded" && error.budget && error.budget.resets_at;
  const wait = retryAfter && !resets ? ` Try again in ${duration(Number(retryAfter))}.` : "";
  const words = {
    400: "The gateway refused the request as invalid",
    401: "The key was not accepted (missing, unknown, revoked or expired)",
    403: "This key may not do that (for a chat: the key is not allowed to use this model)",
    404: "Not found",
    413: "The request is too large",
    502: "The upstream provider answered with an error",
    503: "The provider is unavailable right now",
    504: "The upstream provider timed out",
  };
  let text;
  if (status === 429 && code === "budget_exceeded") text = budgetWords(error.budget);
  else if (status === 429 && code === "rate_limit_exceeded") {
    text = "Rate limit reached: the gateway's requests-per-minute or tokens-per-minute limit for this key or tenant is full";
  } else if (status === 429) text = "Rate limit reached: too many requests or tokens for now";
  else text = words[status] || `The gateway answered ${status}`;
  return new ApiError(status, `${text}.${wait}${said ? ` Gateway: ${said}` : ""}`, code, said);
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return explain(response.status, body, response.headers.get("retry-after"));
}

/** fetch() on our own origin; throws ApiError (in words) for a network failure or a non-2xx answer. */
export async function request(path, {method = "GET", body, signal} = {}) {
  const headers = {accept: "application/json"};
  const key = getKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, BASE), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the gateway (network error).");
  }
  const limits = rateLimitHeaders(response);
  if (Object.keys(limits).length) seen.rateLimits = limits;
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** Like getJson, but null for a 404 (an endpoint this gateway version does not have). */
export async function getOptional(path) {
  try {
    return await getJson(path);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** The OpenAI x-ratelimit-* headers of a response, when the gateway sends them. */
export function rateLimitHeaders(response) {
  const found = {};
  for (const [name, value] of response.headers) {
    if (name.startsWith("x-ratelimit-")) found[name.slice("x-ratelimit-".length)] = value;
  }
  return found;
}
