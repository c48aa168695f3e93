// r1local's chat page: talks to this server's OpenAI API (/v1), keeps conversations in localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "r1local.conversations";
let conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
let current = null;
let controller = null;
let apiKey = localStorage.getItem("r1local.apiKey") || "";

function save() {
  localStorage.setItem(STORE, JSON.stringify(conversations));
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = "Bearer " + apiKey;
  return h;
}

// fetch with the API key; a 401 asks for the key once and retries
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  if (response.status === 401) {
    const key = window.prompt("This r1local server needs its API key:");
    if (key) {
      apiKey = key.trim();
      localStorage.setItem("r1local.apiKey", apiKey);
      return fetch(path, { ...options, headers: headers() });
    }
  }
  return response;
}

async function errorText(response) {
  const body = await response.json().catch(() => ({}));
  return (body.error && (body.error.message || body.error)) || `${response.status} ${response.statusText}`;
}

// ---- Markdown with code highlighting and LaTeX ($...$, $$...$$, \(...\), \[...\]) ----
const MATH = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|\$([^\s$](?:[^$\n]*?[^\s$])?)\$/g;
const CODE = /```[\s\S]*?(?:```|$)|`[^`\n]+`/g;

function renderMarkdown(text) {
  const code = [];
  const maths = [];
  let src = text.replace(CODE, (m) => `\u0000C${code.push(m) - 1}\u0000`);
  src = src.replace(MATH, (m, a, b, c, d) => {
    maths.push({ tex: a ?? b ?? c ?? d, display: a !== undefined || b !== undefined });
    return `@@MATH${maths.length - 1}@@`;
  });
  src = src.replace(/\u0000C(\d+)\u0000/g, (m, i) => code[i]);
  const html = DOMPurify.sanitize(marked.parse(src));
  return html.replace(/@@MATH(\d+)@@/g, (m, i) =>
    katex.renderToString(maths[i].tex, { displayMode: maths[i].display, throwOnError: false }));
}

// ---- conversations ----
function newConversation() {
  current = { id: String(Date.now()), title: "New chat", model: $("model").value, messages: [], updated: Date.now() };
  conversations.unshift(current);
  showConversation();
}

function listConversations() {
  const list = $("conversations");
  list.replaceChildren();
  for (const conv of conversations) {
    const li = document.createElement("li");
    li.classList.toggle("current", conv === current);
    const open = document.createElement("button");
    open.className = "open";
    open.textContent = conv.title;
    open.onclick = () => { if (!controller) { current = conv; showConversation(); } };
    const del = document.createElement("button");
    del.className = "delete";
    del.textContent = "×";
    del.title = "Delete this conversation";
    del.onclick = () => {
      if (controller) return;
      conversations = conversations.filter((c) => c !== conv);
      save();
      if (conv === current) conversations.length ? ((current = conversations[0]), showConversation()) : newConversation();
      else listConversations();
    };
    li.append(open, del);
    list.append(li);
  }
}

function showConversation() {
  $("messages").replaceChildren(...current.messages.map(messageView));
  if (current.model && [...$("model").options].some((o) => o.value === current.model)) $("model").value = current.model;
  listConversations();
}

// ---- one message ----
function messageView(msg) {
  const el = document.createElement("div");
  el.className = `msg ${msg.role}`;
  if (msg.role === "assistant") {
    const thought = document.createElement("details");
    thought.className = "thought";
    thought.innerHTML = '<summary></summary><div class="reasoning"></div>';
    el.append(thought);
  }
  const body = document.createElement("div");
  body.className = "body";
  const note = document.createElement("div");
  note.className = "note";
  el.append(body, note);
  el.update = () => updateView(el, msg);
  el.update();
  return el;
}

function updateView(el, msg) {
  const body = el.querySelector(".body");
  if (msg.role === "user") {
    body.textContent = msg.content;
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
    if (thinking) thought.open = true;
    else thought.open = false;
  }
  body.innerHTML = renderMarkdown(msg.content);
  if (msg.done) body.querySelectorAll("pre code").forEach((block) => hljs.highlightElement(block));
  el.classList.toggle("error", Boolean(msg.error));
  el.querySelector(".note").textContent = msg.error || msg.note || "";
}

// ---- sending ----
async function send(text) {
  const model = $("model").value;
  if (!model) return setStatus("No model to answer: download one with r1local pull r1.", true);
  current.model = model;
  if (current.title === "New chat") current.title = text.slice(0, 60);
  current.messages.push({ role: "user", content: text });
  const msg = { role: "assistant", content: "", reasoning: "", thoughtSeconds: null, done: false };
  current.messages.push(msg);
  const history = current.messages.slice(0, -1).filter((m) => !m.error).map((m) => ({ role: m.role, content: m.content }));
  $("messages").append(messageView(current.messages[current.messages.length - 2]));
  const view = messageView(msg);
  $("messages").append(view);
  listConversations();
  busy(true);
  const body = { model, messages: history, stream: true, think: $("think").checked, stream_options: { include_usage: true } };
  const maxTokens = parseInt($("max-tokens").value, 10);
  if (maxTokens > 0) body.max_tokens = maxTokens;
  controller = new AbortController();
  let pending = false;
  const render = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; view.update(); scrollDown(); });
  };
  const ticker = setInterval(render, 1000); // the "Thinking… N s" clock
  try {
    setStatus(`Asking ${model}…`);
    const response = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body), signal: controller.signal });
    if (!response.ok) throw new Error(await errorText(response));
    await readEvents(response, (chunk) => {
      const choice = (chunk.choices || [])[0] || {};
      const delta = choice.delta || {};
      if (delta.reasoning_content) {
        msg.thinkingSince ??= performance.now();
        msg.reasoning += delta.reasoning_content;
      }
      if (delta.content) {
        if (msg.thinkingSince && msg.thoughtSeconds == null) msg.thoughtSeconds = (performance.now() - msg.thinkingSince) / 1000;
        msg.content += delta.content;
      }
      if (choice.finish_reason === "length") msg.note = "Stopped at the token limit (Max tokens, or the context is full).";
      if (chunk.usage) setStatus(`${chunk.usage.completion_tokens} tokens`);
      render();
    });
  } catch (error) {
    if (error.name === "AbortError") msg.note = "Stopped.";
    else { msg.error = String(error.message || error); setStatus("Failed", true); }
  } finally {
    clearInterval(ticker);
    if (msg.thinkingSince && msg.thoughtSeconds == null) msg.thoughtSeconds = (performance.now() - msg.thinkingSince) / 1000;
    delete msg.thinkingSince;
    msg.done = true;
    controller = null;
    current.updated = Date.now();
    save();
    view.update();
    busy(false);
  }
}

// Server-sent events from a fetch body: one JSON object per "data:" line
async function readEvents(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message || "Generation failed.");
        onChunk(chunk);
      }
    }
  }
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
  if (!on && !$("status").classList.contains("error")) setStatus("");
}

function scrollDown() {
  const box = $("messages");
  if (box.scrollHeight - box.scrollTop - box.clientHeight < 200) box.scrollTop = box.scrollHeight;
}

async function loadModels() {
  const response = await api("/v1/models");
  if (!response.ok) return setStatus(await errorText(response), true);
  const models = (await response.json()).data.map((m) => m.id);
  $("model").replaceChildren(...models.map((id) => new Option(id, id)));
  const preferred = (current && current.model) || localStorage.getItem("r1local.model");
  if (models.includes(preferred)) $("model").value = preferred;
  if (!models.length) setStatus("No model is downloaded yet: run r1local pull r1 in a terminal.", true);
}

window.addEventListener("DOMContentLoaded", async () => {
  marked.setOptions({ gfm: true, breaks: false });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || controller) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("stop").onclick = () => controller && controller.abort();
  $("new-chat").onclick = () => { if (!controller) newConversation(); };
  $("model").onchange = () => {
    localStorage.setItem("r1local.model", $("model").value);
    if (current) { current.model = $("model").value; save(); }
  };
  current = conversations[0] || null;
  await loadModels();
  if (current) showConversation();
  else newConversation();
});
