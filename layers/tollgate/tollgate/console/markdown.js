// A safe Markdown subset for model output: paragraphs, headings, fenced code, inline code, bold, italics,
// lists and http(s) links. It builds DOM nodes; model text only ever becomes text nodes, so an answer
// containing <script> or <img onerror=…> shows those characters and cannot run anything.

import {h} from "./dom.js";

const INLINE = new RegExp(
  [
    "(`+)([\\s\\S]*?[^`])\\1(?!`)", // 1,2: inline code
    "\\*\\*([^*\\n]+?)\\*\\*", // 3: bold
    "__([^_\\n]+?)__", // 4: bold
    "\\*([^*\\s](?:[^*\\n]*?[^*\\s])?)\\*", // 5: italic
    "(?<![\\w])_([^_\\s](?:[^_\\n]*?[^_\\s])?)_(?![\\w])", // 6: italic
    "\\[([^\\]\\n]+)\\]\\(([^)\\s]+)\\)", // 7,8: link
  ].join("|"),
  "g",
);

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Inline markup of one block's text -> array of nodes. */
export function inline(text) {
  const nodes = [];
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) nodes.push(document.createTextNode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    if (m[2] !== undefined) nodes.push(h("code", {}, m[2]));
    else if (m[3] !== undefined || m[4] !== undefined) nodes.push(h("strong", {}, inline(m[3] ?? m[4])));
    else if (m[5] !== undefined || m[6] !== undefined) nodes.push(h("em", {}, inline(m[5] ?? m[6])));
    else {
      const href = safeUrl(m[8]);
      nodes.push(href
        ? h("a", {href, rel: "noopener noreferrer", target: "_blank"}, inline(m[7]))
        : document.createTextNode(m[0]));
    }
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function withBreaks(lines) {
  const nodes = [];
  lines.forEach((line, i) => {
    if (i) nodes.push(h("br"));
    nodes.push(...inline(line));
  });
  return nodes;
}

const FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*)$/;
const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d{1,9}[.)]\s+(.*)$/;

function fenced(lines, i, out) {
  const [, fence, lang] = lines[i].match(FENCE);
  const body = [];
  let j = i + 1;
  while (j < lines.length && lines[j].trim() !== fence) body.push(lines[j++]);
  const code = h("code", lang ? {"data-lang": lang} : {}, body.join("\n"));
  out.append(h("pre", {}, code));
  return j + 1; // past the closing fence (or the end while a stream is still open)
}

function list(lines, i, out, pattern, tag) {
  const el = h(tag);
  while (i < lines.length && pattern.test(lines[i])) {
    el.append(h("li", {}, inline(lines[i].match(pattern)[1])));
    i += 1;
  }
  out.append(el);
  return i;
}

function paragraph(lines, i, out) {
  const body = [];
  while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) body.push(lines[i++]);
  out.append(h("p", {}, withBreaks(body)));
  return i;
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || BULLET.test(line) || NUMBERED.test(line);
}

/** Markdown text -> a DocumentFragment built from elements and text nodes only. */
export function render(text) {
  const out = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) i += 1;
    else if (FENCE.test(line)) i = fenced(lines, i, out);
    else if (HEADING.test(line)) {
      const [, marks, title] = line.match(HEADING);
      out.append(h(`h${Math.min(marks.length + 2, 6)}`, {}, inline(title)));
      i += 1;
    } else if (BULLET.test(line)) i = list(lines, i, out, BULLET, "ul");
    else if (NUMBERED.test(line)) i = list(lines, i, out, NUMBERED, "ol");
    else i = paragraph(lines, i, out);
  }
  return out;
}
