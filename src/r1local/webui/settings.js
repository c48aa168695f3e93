// The settings panel: system prompt, sampling, token limit and thinking, kept with each conversation
// (a new conversation starts from the last one's), and what they add to a chat request.

const $ = (id) => document.getElementById(id);
const DEFAULTS = "r1local.settings";
const NUMBERS = { temperature: "temperature", topP: "top-p", seed: "seed", maxTokens: "max-tokens",
  thinkBudget: "think-budget" };

export function lastSettings() {
  try {
    return JSON.parse(localStorage.getItem(DEFAULTS) || "{}") || {};
  } catch {
    return {};
  }
}

// Fill the panel from a conversation's settings
export function showSettings(settings) {
  $("system").value = settings.system || "";
  $("think").checked = settings.think !== false;
  for (const [key, id] of Object.entries(NUMBERS)) $(id).value = settings[key] ?? "";
  $("think-budget").disabled = !$("think").checked;
}

// The panel's values: empty fields are left out, so the server's defaults apply
export function readSettings() {
  const settings = { think: $("think").checked };
  if ($("system").value.trim()) settings.system = $("system").value;
  for (const [key, id] of Object.entries(NUMBERS)) {
    const value = $(id).valueAsNumber;
    if (Number.isFinite(value) && $(id).checkValidity()) settings[key] = value;
  }
  $("think-budget").disabled = !settings.think;
  localStorage.setItem(DEFAULTS, JSON.stringify(settings));
  return settings;
}

// The request fields for these settings. Thinking is sent only when turned off: on is each model's
// own default, so a model that cannot think still answers.
export function requestFields(settings) {
  const fields = {};
  if (settings.think === false) fields.think = false;
  else if (settings.thinkBudget > 0) fields.reasoning_budget_tokens = settings.thinkBudget;
  if (settings.temperature !== undefined) fields.temperature = settings.temperature;
  if (settings.topP !== undefined) fields.top_p = settings.topP;
  if (settings.seed !== undefined) fields.seed = settings.seed; // the same seed, the same answer
  if (settings.maxTokens > 0) fields.max_tokens = settings.maxTokens;
  return fields;
}

export function withSystem(settings, messages) {
  return settings.system ? [{ role: "system", content: settings.system }, ...messages] : messages;
}
