// One message on the page: the reasoning fold, the rendered answer, its figures (tokens, speed, time to
// first token) or error, and its buttons (copy; edit and resend on the last question; regenerate on
// the last answer). Code blocks get their own copy button.
import { highlightCode, renderMarkdown } from "./markdown.js";

// Copy to the clipboard; pages served over plain HTTP on a LAN address have no Clipboard API
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = Object.assign(document.createElement("textarea"), { value: text });
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function button(label, title, onClick) {
  const b = Object.assign(document.createElement("button"), { type: "button", textContent: label, title });
  b.onclick = onClick;
  return b;
}

function copyButton(getText) {
  const b = button("Copy", "Copy to the clipboard", async () => {
    await copyText(getText());
    b.textContent = "Copied";
    setTimeout(() => (b.textContent = "Copy"), 1500);
  });
  b.className = "copy";
  return b;
}

// `actions`: {edit, regenerate} callbacks where this message offers them (the last turns, when idle)
export function messageView(msg, actions = {}) {
  const el = document.createElement("div");
  el.className = `msg ${msg.role}`;
  if (msg.role === "assistant") {
    const thought = document.createElement("details");
    thought.className = "thought";
    const reasoning = Object.assign(document.createElement("div"), { className: "reasoning" });
    thought.append(document.createElement("summary"), reasoning);
    el.append(thought);
  }
  const body = Object.assign(document.createElement("div"), { className: "body" });
  const note = Object.assign(document.createElement("div"), { className: "note" });
  const bar = Object.assign(document.createElement("div"), { className: "actions" });
  bar.append(copyButton(() => msg.content));
  if (actions.edit) {
    bar.append(button("Edit", "Edit this message and send it again", () => editView(el, msg, actions.edit)));
  }
  if (actions.regenerate) {
    bar.append(button(msg.error ? "Retry" : "Regenerate", "Answer this question again", actions.regenerate));
  }
  el.append(body, note, bar);
  el.update = () => updateView(el, msg);
  el.update();
  return el;
}

function updateView(el, msg) {
  const body = el.querySelector(".body");
  el.classList.toggle("failed", Boolean(msg.failed || msg.error));
  el.querySelector(".actions").hidden = !msg.done && msg.role === "assistant";
  if (msg.role === "user") {
    body.textContent = msg.content;
    el.querySelector(".note").textContent = msg.failed ? "Not answered: this question is not sent again." : "";
    return;
  }
  const thought = el.querySelector(".thought");
  thought.hidden = !msg.reasoning;
  if (msg.reasoning) {
    const thinking = msg.thoughtSeconds == null && !msg.done;
    thought.querySelector("summary").textContent = thinking
      ? `Thinking… ${Math.round((performance.now() - msg.thinkingSince) / 1000)} s`
      : `Thought for ${Math.round(msg.thoughtSeconds ?? 0)} s`;
    thought.querySelector(".reasoning").textContent = msg.reasoning;
    thought.open = thinking;
  }
  body.replaceChildren(renderMarkdown(msg.content));
  if (msg.done) {
    highlightCode(body);
    body.querySelectorAll("pre").forEach((pre) => pre.append(copyButton(() => pre.querySelector("code").textContent)));
  }
  const figures = msg.stats && msg.done ? statsLine(msg.stats) : "";
  el.querySelector(".note").textContent = msg.error || [msg.note, figures].filter(Boolean).join(" ");
}

function editView(el, msg, resend) {
  const body = el.querySelector(".body");
  const area = Object.assign(document.createElement("textarea"), { value: msg.content, rows: 3, className: "edit" });
  const send = button("Send", "Send the edited message; the answers after it are replaced", () => {
    if (area.value.trim()) resend(area.value.trim());
  });
  send.className = "primary";
  const cancel = button("Cancel", "Keep the message as it was", () => el.update());
  const box = Object.assign(document.createElement("div"), { className: "edit-box" });
  box.append(area, send, cancel);
  body.replaceChildren(box);
  area.focus();
}

function plural(n, word) {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

// "120 tokens (80 thinking) · 9.4 tokens/s · first token after 0.8 s · prompt 35 tokens"
export function statsLine(stats) {
  const parts = [];
  if (stats.completionTokens != null) {
    const thinking = stats.reasoningTokens ? ` (${stats.reasoningTokens} thinking)` : "";
    parts.push(plural(stats.completionTokens, "token") + thinking);
  }
  if (stats.tokensPerSecond) parts.push(`${stats.tokensPerSecond.toFixed(1)} tokens/s`);
  if (stats.firstTokenSeconds != null) parts.push(`first token after ${stats.firstTokenSeconds.toFixed(2)} s`);
  if (stats.promptTokens != null) parts.push(`prompt ${plural(stats.promptTokens, "token")}`);
  return parts.join(" · ");
}
