// Conversations: kept in this browser's localStorage, searched, and exported to or imported from
// JSON (every field) and Markdown (what a person reads).

const STORE = "r1local.conversations";
const ROLES = new Set(["user", "assistant"]);

export function loadConversations() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE) || "[]");
    return Array.isArray(stored) ? stored.map(cleanConversation).filter(Boolean) : [];
  } catch {
    return [];
  }
}

export function saveConversations(conversations) {
  localStorage.setItem(STORE, JSON.stringify(conversations));
}

export function newConversation(model, settings) {
  return { id: newId(), title: "New chat", model, settings: { ...settings }, messages: [], updated: Date.now() };
}

function newId() {
  return `${Date.now().toString(36)}-${crypto.getRandomValues(new Uint32Array(1))[0].toString(36)}`;
}

export function matches(conv, query) {
  const q = query.trim().toLowerCase();
  return !q || conv.title.toLowerCase().includes(q) || conv.messages.some((m) => m.content.toLowerCase().includes(q));
}

// Only the fields the page knows, with the types it expects: an imported file is outside input.
function cleanConversation(conv) {
  if (!conv || typeof conv !== "object" || !Array.isArray(conv.messages)) return null;
  const messages = conv.messages
    .filter((m) => m && ROLES.has(m.role) && typeof m.content === "string")
    .map((m) => {
      const kept = { role: m.role, content: m.content, done: true };
      for (const field of ["reasoning", "note", "error"]) if (typeof m[field] === "string") kept[field] = m[field];
      if (typeof m.thoughtSeconds === "number") kept.thoughtSeconds = m.thoughtSeconds;
      if (m.failed === true) kept.failed = true;
      if (m.stats && typeof m.stats === "object") kept.stats = cleanStats(m.stats);
      return kept;
    });
  return {
    id: typeof conv.id === "string" ? conv.id : newId(),
    title: typeof conv.title === "string" && conv.title.trim() ? conv.title.slice(0, 200) : "Imported chat",
    model: typeof conv.model === "string" ? conv.model : "",
    settings: conv.settings && typeof conv.settings === "object" ? cleanSettings(conv.settings) : {},
    messages,
    updated: typeof conv.updated === "number" ? conv.updated : Date.now(),
  };
}

function cleanStats(stats) {
  const kept = {};
  for (const [key, value] of Object.entries(stats)) if (typeof value === "number") kept[key] = value;
  return kept;
}

function cleanSettings(settings) {
  const kept = {};
  if (typeof settings.system === "string") kept.system = settings.system;
  if (typeof settings.think === "boolean") kept.think = settings.think;
  for (const key of ["temperature", "topP", "seed", "maxTokens", "thinkBudget"]) {
    if (typeof settings[key] === "number" && Number.isFinite(settings[key])) kept[key] = settings[key];
  }
  return kept;
}

// ---- export ----
export function toJSON(conv) {
  return JSON.stringify({ r1local: "conversation", ...conv }, null, 2);
}

export function toMarkdown(conv) {
  const parts = [`# ${conv.title}`];
  if (conv.settings && conv.settings.system) parts.push(`## System\n\n${conv.settings.system}`);
  for (const m of conv.messages) {
    if (m.failed || m.error) continue;
    let text = m.content;
    if (m.reasoning) text = `<details><summary>Thought</summary>\n\n${m.reasoning}\n\n</details>\n\n${text}`;
    parts.push(`## ${m.role === "user" ? "User" : "Assistant"}\n\n${text}`);
  }
  return parts.join("\n\n") + "\n";
}

export function download(name, type, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function fileName(conv, extension) {
  const stem = conv.title.replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-|-$/g, "").slice(0, 60) || "chat";
  return `${stem}.${extension}`;
}

// ---- import ----
// JSON: one conversation or a list of them, as exported. Markdown: "## User" and "## Assistant"
// sections, as exported (a reasoning fold becomes the reasoning again).
export function parseImport(name, text) {
  if (/\.json$/i.test(name) || text.trimStart().startsWith("{") || text.trimStart().startsWith("[")) {
    let data;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new Error(`${name} is not valid JSON: ${error.message}`);
    }
    const convs = (Array.isArray(data) ? data : [data]).map(cleanConversation).filter(Boolean);
    if (!convs.length) throw new Error(`${name} holds no conversation (expected {"messages": [...]}).`);
    return convs.map((conv) => ({ ...conv, id: newId() }));
  }
  const conv = fromMarkdown(text);
  if (!conv.messages.length) throw new Error(`${name} has no "## User" or "## Assistant" section.`);
  return [conv];
}

const FOLD = /^<details><summary>Thought<\/summary>\n\n([\s\S]*?)\n\n<\/details>\n\n/;

function fromMarkdown(text) {
  const title = (text.match(/^# (.+)$/m) || [])[1] || "Imported chat";
  const conv = newConversation("", {});
  conv.title = title.trim().slice(0, 200);
  const sections = text.split(/^## (User|Assistant|System)[ \t]*$/m);
  for (let i = 1; i < sections.length; i += 2) {
    let content = sections[i + 1].trim();
    if (sections[i] === "System") {
      conv.settings.system = content;
      continue;
    }
    const message = { role: sections[i] === "User" ? "user" : "assistant", content, done: true };
    const fold = content.match(FOLD);
    if (fold) Object.assign(message, { reasoning: fold[1], content: content.slice(fold[0].length) });
    conv.messages.push(message);
  }
  return conv;
}
