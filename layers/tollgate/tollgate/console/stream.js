// POST /v1/chat/completions with stream: true, read as Server-Sent Events from fetch()'s body stream.

import {ApiError, rateLimitHeaders, request} from "./api.js";

/** The data of each complete SSE event in buffer; returns [events, rest]. */
export function splitEvents(buffer) {
  const parts = buffer.split(/\r?\n\r?\n/);
  const rest = parts.pop();
  const events = [];
  for (const part of parts) {
    const data = part.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
    if (data.length) events.push(data.join("\n"));
  }
  return [events, rest];
}

function streamedError(chunk) {
  const error = chunk.error || {};
  const message = typeof error.message === "string" ? error.message : "unknown error";
  return new ApiError(502, `The answer was cut off by an error after it began. Gateway: ${message}`, error.code);
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    throw new ApiError(502, "The gateway sent an event that is not JSON; the answer is incomplete.");
  }
}

/**
 * Streams one chat completion. onText(piece) is called for every content delta as it arrives.
 * Resolves with {provider, model, usage, tollgate, finish, rateLimits}; rejects with ApiError (in words)
 * or an AbortError when signal aborts (the stop button).
 */
export async function streamChat(body, {signal, onText}) {
  const payload = {...body, stream: true, stream_options: {include_usage: true}};
  const response = await request("v1/chat/completions", {method: "POST", body: payload, signal});
  const result = {
    provider: response.headers.get("x-tollgate-provider"),
    requestId: response.headers.get("x-tollgate-request-id"),
    model: null, usage: null, tollgate: null, finish: null,
    rateLimits: rateLimitHeaders(response),
  };
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) throw new ApiError(502, "The answer ended before the gateway finished it (connection lost).");
    const [events, rest] = splitEvents(buffer + value);
    buffer = rest;
    for (const data of events) {
      if (data === "[DONE]") {
        reader.cancel().catch(() => null);
        return result;
      }
      const chunk = parse(data);
      if (chunk.error) throw streamedError(chunk);
      result.model = chunk.model || result.model;
      if (chunk.usage) result.usage = chunk.usage;
      if (chunk.tollgate) result.tollgate = {...result.tollgate, ...chunk.tollgate};
      const choice = (chunk.choices || [])[0];
      if (choice && choice.finish_reason) result.finish = choice.finish_reason;
      const text = choice && choice.delta && choice.delta.content;
      if (typeof text === "string" && text) onText(text);
    }
  }
}
