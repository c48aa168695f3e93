// Requests to this server's API: the API key (kept for this tab only unless the user asks to remember
// it), error texts, and the server-sent events of a streamed answer.

const $ = (id) => document.getElementById(id);
const KEY = "r1local.apiKey"; // sessionStorage: this tab, until it closes
const REMEMBERED_KEY = "r1local.rememberedApiKey"; // localStorage: only when the user ticks "Remember"

// Earlier versions kept the key in localStorage without asking: keep it for this tab, forget it on disk.
if (localStorage.getItem(KEY)) {
  sessionStorage.setItem(KEY, localStorage.getItem(KEY));
  localStorage.removeItem(KEY);
}
let apiKey = sessionStorage.getItem(KEY) || localStorage.getItem(REMEMBERED_KEY) || "";

export function forgetKey() {
  apiKey = "";
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(REMEMBERED_KEY);
}

function keepKey(key, remember) {
  apiKey = key;
  sessionStorage.setItem(KEY, key);
  if (remember) localStorage.setItem(REMEMBERED_KEY, key);
  else localStorage.removeItem(REMEMBERED_KEY);
}

// The key dialog: resolves to true once a key was entered, false when the user cancels.
function askForKey() {
  const dialog = $("key-dialog");
  $("key-input").value = "";
  $("key-remember").checked = false;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.onclose = () => {
      const key = $("key-input").value.trim();
      $("key-input").value = "";
      if (dialog.returnValue === "ok" && key) keepKey(key, $("key-remember").checked);
      resolve(dialog.returnValue === "ok" && Boolean(key));
    };
  });
}

export function wireKeyDialog() {
  const dialog = $("key-dialog");
  $("key-ok").onclick = () => dialog.close("ok");
  $("key-cancel").onclick = () => dialog.close("");
  $("key-input").onkeydown = (event) => { if (event.key === "Enter") dialog.close("ok"); };
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = "Bearer " + apiKey;
  return h;
}

let asking = null; // one question for the requests refused together

// fetch with the API key; a 401 asks for the key and retries
export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  if (response.status !== 401) return response;
  asking ??= askForKey().finally(() => (asking = null));
  return (await asking) ? fetch(path, { ...options, headers: headers() }) : response;
}

export async function errorText(response) {
  const body = await response.json().catch(() => ({}));
  const error = body.error;
  const message = error && (error.message || (typeof error === "string" && error));
  return message || `${response.status} ${response.statusText}`;
}

// Server-sent events from a fetch body: one JSON object per "data:" line
export async function readEvents(response, onChunk) {
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
