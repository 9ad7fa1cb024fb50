// The Chat page: model picker, settings, streamed answers with a stop button, cost per answer.

import {getJson} from "./api.js";
import {count, field, h, replace, usd} from "./dom.js";
import {render} from "./markdown.js";
import {streamChat} from "./stream.js";

function controls() {
  return {
    model: h("select", {id: "model-select", testid: "model-select"}),
    system: h("textarea", {id: "chat-system", rows: 2, placeholder: "You are a helpful assistant."}),
    temperature: h("input", {id: "chat-temperature", type: "number", min: 0, max: 2, step: 0.1,
      placeholder: "default", inputmode: "decimal"}),
    maxTokens: h("input", {id: "chat-max-tokens", type: "number", min: 1, step: 1, placeholder: "default",
      inputmode: "numeric"}),
    session: h("input", {id: "chat-session", type: "text", placeholder: "none (history kept in this tab)",
      spellcheck: "false", autocomplete: "off"}),
    prompt: h("textarea", {id: "prompt-input", testid: "prompt-input", rows: 3,
      placeholder: "Ask something… (Enter sends, Shift+Enter adds a line)"}),
    send: h("button", {type: "submit", testid: "send-button"}, "Send"),
    stop: h("button", {type: "button", testid: "stop-button", class: "secondary", disabled: true}, "Stop"),
    reset: h("button", {type: "button", class: "quiet"}, "New conversation"),
    transcript: h("div", {class: "transcript", "aria-live": "polite", "aria-label": "Conversation"}),
  };
}

function numberOrNull(input) {
  const value = input.value.trim();
  return value === "" ? null : Number(value);
}

function metaText(result, stopped) {
  const parts = [];
  if (result && result.usage) {
    const u = result.usage;
    parts.push(`${count(u.prompt_tokens)} prompt + ${count(u.completion_tokens)} completion = ` +
      `${count(u.total_tokens)} tokens`);
    parts.push(`cost ${usd(result.tollgate && result.tollgate.cost_usd)}`);
  } else if (!stopped) parts.push("no usage reported");
  if (result && result.provider) parts.push(`provider ${result.provider}`);
  if (result && result.model) parts.push(`model ${result.model}`);
  if (stopped) parts.push("stopped");
  return parts.join(" · ");
}

export class ChatPage {
  constructor(root, banner) {
    this.root = root;
    this.banner = banner;
    this.c = controls();
    this.history = [];
    this.abort = null;
    this.loaded = false;
    this.build();
  }

  build() {
    const c = this.c;
    // open on wide screens; on a phone the answers get the room until the user opens the settings
    const settings = h("details", {class: "settings", open: matchMedia("(min-width: 640px)").matches},
      h("summary", {}, "Settings"),
      h("div", {class: "grid"},
        field("Model", c.model),
        field("Temperature", c.temperature),
        field("Max tokens", c.maxTokens),
        field("Session id (optional: the gateway keeps the conversation)", c.session)),
      field("System prompt", c.system));
    const composer = h("form", {class: "composer", onsubmit: (e) => { e.preventDefault(); this.send(); }},
      h("label", {for: "prompt-input", class: "visually-hidden"}, "Prompt"),
      c.prompt, h("div", {class: "actions"}, c.send, c.stop, c.reset));
    c.prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); this.send(); }
    });
    c.stop.addEventListener("click", () => this.abort && this.abort.abort());
    c.reset.addEventListener("click", () => { this.history = []; replace(c.transcript); });
    replace(this.root, h("h1", {}, "Chat"), settings, c.transcript, composer);
  }

  async show() {
    if (this.loaded) return;
    try {
      const models = await getJson("v1/models");
      const ids = (models.data || []).map((m) => m.id);
      replace(this.c.model, ids.map((id) => h("option", {value: id}, id)));
      if (!ids.length) this.banner.show("This key may use no configured model.");
      this.loaded = true;
    } catch (err) {
      this.banner.show(err.message);
    }
  }

  body(prompt) {
    const c = this.c;
    const messages = [];
    if (c.system.value.trim()) messages.push({role: "system", content: c.system.value});
    const session = c.session.value.trim();
    if (!session) messages.push(...this.history);
    messages.push({role: "user", content: prompt});
    const body = {model: c.model.value, messages};
    const temperature = numberOrNull(c.temperature);
    const maxTokens = numberOrNull(c.maxTokens);
    if (temperature !== null) body.temperature = temperature;
    if (maxTokens !== null) body.max_tokens = maxTokens;
    if (session) body.session_id = session;
    return body;
  }

  busy(on) {
    this.c.send.disabled = on;
    this.c.stop.disabled = !on;
  }

  async send() {
    const prompt = this.c.prompt.value;
    if (!prompt.trim() || this.abort) return;
    this.banner.clear();
    const body = this.body(prompt);
    const answer = h("div", {class: "md", testid: "message-assistant"});
    const meta = h("div", {class: "meta", testid: "message-meta"}, "streaming…");
    this.c.transcript.append(
      h("div", {class: "msg user"}, h("div", {class: "who"}, "You"), h("div", {class: "text"}, prompt)),
      h("div", {class: "msg assistant"}, h("div", {class: "who"}, "Assistant"), answer, meta));
    this.c.prompt.value = "";
    this.abort = new AbortController();
    this.busy(true);
    let text = "";
    let frame = null;
    const draw = () => {
      frame = null;
      replace(answer, render(text));
      answer.scrollIntoView({block: "nearest"});
    };
    answer.setAttribute("aria-busy", "true"); // screen readers announce the answer once, not every token
    try {
      const result = await streamChat(body, {
        signal: this.abort.signal,
        onText: (piece) => {
          text += piece;
          frame = frame || requestAnimationFrame(draw); // at most one Markdown render per frame
        },
      });
      replace(meta, metaText(result, false));
      if (result.requestId) meta.title = `request ${result.requestId}`;
      this.history.push({role: "user", content: prompt}, {role: "assistant", content: text});
    } catch (err) {
      const stopped = err && err.name === "AbortError";
      replace(meta, stopped ? metaText(null, true) : `failed${err.status ? ` (${err.status})` : ""}`);
      if (!stopped) this.banner.show(err.message || String(err));
    } finally {
      if (frame) cancelAnimationFrame(frame);
      draw();
      answer.setAttribute("aria-busy", "false");
      this.abort = null;
      this.busy(false);
      this.c.prompt.focus();
    }
  }
}
