// r1local's chat page: talks to this server's OpenAI API (/v1), keeps conversations in localStorage.
// This module wires the page together: the conversation list, the model picker, sending and streaming.
import { api, errorText, forgetKey, readEvents, wireKeyDialog } from "./api.js";
import { lastSettings, readSettings, requestFields, showSettings, withSystem } from "./settings.js";
import * as store from "./store.js";
import { messageView } from "./views.js";

const $ = (id) => document.getElementById(id);
let conversations = store.loadConversations();
let current = null;
let controller = null; // set while an answer streams

function save() {
  current.updated = Date.now();
  store.saveConversations(conversations);
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// ---- conversations ----
function startConversation() {
  current = store.newConversation($("model").value, lastSettings());
  conversations.unshift(current);
  showConversation();
}

function openConversation(conv) {
  if (controller) return;
  current = conv;
  showConversation();
  document.body.classList.remove("sidebar-open");
}

function listConversations() {
  const query = $("search").value;
  const rows = conversations.filter((conv) => store.matches(conv, query)).map((conv) => {
    const li = document.createElement("li");
    li.classList.toggle("current", conv === current);
    const open = Object.assign(document.createElement("button"), { className: "open", textContent: conv.title });
    open.onclick = () => openConversation(conv);
    const rename = Object.assign(document.createElement("button"), { className: "rename", textContent: "✎",
      title: "Rename this conversation" });
    rename.onclick = () => renameRow(li, conv);
    const del = Object.assign(document.createElement("button"), { className: "delete", textContent: "×",
      title: "Delete this conversation" });
    del.onclick = () => deleteConversation(conv);
    li.append(open, rename, del);
    return li;
  });
  $("conversations").replaceChildren(...rows);
}

function renameRow(li, conv) {
  const input = Object.assign(document.createElement("input"), { value: conv.title, className: "rename-input",
    ariaLabel: "New name" });
  const done = (keep) => {
    if (keep && input.value.trim()) conv.title = input.value.trim().slice(0, 200);
    store.saveConversations(conversations);
    listConversations();
  };
  input.onkeydown = (event) => {
    if (event.key === "Enter") done(true);
    else if (event.key === "Escape") done(false);
  };
  input.onblur = () => done(true);
  li.replaceChildren(input);
  input.select();
}

function deleteConversation(conv) {
  if (controller) return;
  conversations = conversations.filter((c) => c !== conv);
  store.saveConversations(conversations);
  if (conv !== current) listConversations();
  else if (conversations.length) openConversation(conversations[0]);
  else startConversation();
}

function showConversation() {
  const last = current.messages.length - 1;
  const idle = !controller;
  const lastQuestion = current.messages.map((m) => m.role).lastIndexOf("user");
  $("messages").replaceChildren(...current.messages.map((msg, i) => messageView(msg, {
    edit: idle && i === lastQuestion ? (text) => resend(i, text) : null,
    regenerate: idle && i === last && msg.role === "assistant" ? () => resend(lastQuestion) : null,
  })));
  $("empty").hidden = current.messages.length > 0;
  if (current.model && [...$("model").options].some((o) => o.value === current.model)) $("model").value = current.model;
  showSettings(current.settings || {});
  listConversations();
  scrollDown(true);
}

// ---- sending ----
function send(text) {
  if (current.title === "New chat") current.title = text.slice(0, 60);
  current.messages.push({ role: "user", content: text });
  answer();
}

// Ask again from the question at `index` (its text replaced when edited): what followed it goes.
function resend(index, text) {
  if (controller) return;
  const question = current.messages[index];
  current.messages.splice(index + 1);
  delete question.failed;
  if (text !== undefined) question.content = text;
  answer();
}

// The turns the model sees: failed questions and error notes stay on the page but are never sent.
function history() {
  return current.messages.filter((m) => !m.failed && !m.error).map((m) => ({ role: m.role, content: m.content }));
}

async function answer() {
  const model = $("model").value;
  const question = current.messages[current.messages.length - 1];
  if (!model) {
    question.failed = true;
    showConversation();
    return setStatus("No model to answer: download one with r1local pull r1.", true);
  }
  current.model = model;
  current.settings = readSettings();
  const body = { model, messages: withSystem(current.settings, history()), stream: true,
    stream_options: { include_usage: true }, ...requestFields(current.settings) };
  const msg = { role: "assistant", content: "", reasoning: "", thoughtSeconds: null, done: false };
  current.messages.push(msg);
  controller = new AbortController();
  showConversation();
  busy(true);
  const view = $("messages").lastElementChild;
  let pending = false;
  const render = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; view.update(); scrollDown(); });
  };
  const ticker = setInterval(render, 1000); // the "Thinking… N s" clock
  const started = performance.now();
  let firstToken = null;
  let usage = null;
  try {
    setStatus(`Asking ${model}…`);
    const response = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body),
      signal: controller.signal });
    if (!response.ok) throw new Error(await errorText(response));
    await readEvents(response, (chunk) => {
      const choice = (chunk.choices || [])[0] || {};
      const delta = choice.delta || {};
      if (delta.reasoning_content || delta.content) firstToken ??= performance.now();
      if (delta.reasoning_content) {
        msg.thinkingSince ??= performance.now();
        msg.reasoning += delta.reasoning_content;
      }
      if (delta.content) {
        endThinking(msg);
        msg.content += delta.content;
      }
      if (choice.finish_reason === "length") msg.note = "Stopped at the token limit (Max tokens, or a full context).";
      if (chunk.usage) usage = chunk.usage;
      render();
    });
    setStatus("");
  } catch (error) {
    if (error.name === "AbortError") msg.note = "Stopped.";
    else {
      msg.error = `Failed: ${error.message || error}`;
      question.failed = true;
      setStatus("Failed", true);
    }
  } finally {
    clearInterval(ticker);
    endThinking(msg);
    delete msg.thinkingSince;
    msg.stats = figures(started, firstToken, performance.now(), usage);
    msg.done = true;
    controller = null;
    save();
    busy(false);
    showConversation();
    loadModels(); // the answer may have loaded the model
  }
}

function endThinking(msg) {
  if (msg.thinkingSince && msg.thoughtSeconds == null) {
    msg.thoughtSeconds = (performance.now() - msg.thinkingSince) / 1000;
  }
}

function figures(started, firstToken, ended, usage) {
  const stats = {};
  if (firstToken !== null) stats.firstTokenSeconds = (firstToken - started) / 1000;
  if (usage) {
    stats.completionTokens = usage.completion_tokens;
    stats.promptTokens = usage.prompt_tokens;
    stats.reasoningTokens = (usage.completion_tokens_details || {}).reasoning_tokens || 0;
    // the first token's wait is the prompt's; the rest measure generation
    if (firstToken !== null && usage.completion_tokens > 1 && ended > firstToken) {
      stats.tokensPerSecond = (usage.completion_tokens - 1) / ((ended - firstToken) / 1000);
    }
  }
  return stats;
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

function scrollDown(always = false) {
  const box = $("messages");
  if (always || box.scrollHeight - box.scrollTop - box.clientHeight < 200) box.scrollTop = box.scrollHeight;
}

// ---- the model picker: size, quantisation, engine, and whether it is loaded ----
function formatBytes(bytes) {
  if (!bytes) return "";
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.max(1, Math.round(bytes / 2 ** 20))} MiB`;
}

function modelLabel(model, tag, loaded) {
  const details = (tag && tag.details) || {};
  const parts = [details.parameter_size, details.quantization_level, formatBytes(tag && tag.size), model.engine]
    .filter(Boolean);
  if (model.engine !== "upstream") parts.push(loaded ? "loaded" : "not loaded"); // another server's business
  return `${model.id} · ${parts.join(" · ")}`;
}

async function loadModels() {
  const [models, tags, ps] = await Promise.all(["/v1/models", "/api/tags", "/api/ps"].map((path) => api(path)));
  if (!models.ok) return setStatus(await errorText(models), true);
  const list = (await models.json()).data;
  const byName = tags.ok ? Object.fromEntries((await tags.json()).models.map((m) => [m.name, m])) : {};
  const loaded = new Set(ps.ok ? (await ps.json()).models.map((m) => m.name) : []);
  const chosen = $("model").value;
  $("model").replaceChildren(...list.map((m) => new Option(modelLabel(m, byName[m.id], loaded.has(m.id)), m.id)));
  const ids = list.map((m) => m.id);
  const preferred = chosen || (current && current.model) || localStorage.getItem("r1local.model");
  if (ids.includes(preferred)) $("model").value = preferred;
  if (!ids.length) setStatus("No model is downloaded yet: run r1local pull r1 in a terminal.", true);
}

// ---- export and import ----
async function importFiles(files) {
  try {
    for (const file of files) {
      const imported = store.parseImport(file.name, await file.text());
      conversations.unshift(...imported);
      current = imported[0];
    }
    store.saveConversations(conversations);
    showConversation();
    setStatus(`Imported ${files.length === 1 ? files[0].name : `${files.length} files`}.`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

function wire() {
  wireKeyDialog();
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
  $("new-chat").onclick = () => {
    if (controller) return;
    startConversation();
    document.body.classList.remove("sidebar-open");
  };
  $("menu").onclick = () => document.body.classList.toggle("sidebar-open");
  $("search").oninput = listConversations;
  $("model").onchange = () => {
    localStorage.setItem("r1local.model", $("model").value);
    current.model = $("model").value;
    save();
  };
  $("settings-button").onclick = () => $("settings").toggleAttribute("hidden");
  $("settings").oninput = () => {
    current.settings = readSettings();
    save();
  };
  $("forget-key").onclick = () => {
    forgetKey();
    setStatus("The API key is forgotten; the page asks for it again when needed.");
  };
  $("export-json").onclick = () => store.download(store.fileName(current, "json"), "application/json",
    store.toJSON(current));
  $("export-md").onclick = () => store.download(store.fileName(current, "md"), "text/markdown",
    store.toMarkdown(current));
  $("import").onclick = () => $("import-file").click();
  $("import-file").onchange = () => {
    importFiles([...$("import-file").files]);
    $("import-file").value = "";
  };
}

window.addEventListener("DOMContentLoaded", async () => {
  wire();
  current = conversations[0] || null;
  await loadModels();
  if (current) showConversation();
  else startConversation();
});
