"""The chat REPL's slash commands: r1local's own and Ollama's spellings of the same (`/set parameter
NAME VALUE`, `/set verbose`, `/set think` and `/set nothink`, `/show info`), so habits carry over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from .. import presets
from ..engine.events import Done
from ..engine.params import SamplingParams
from ..units import plural
from .app import err, out

if TYPE_CHECKING:
    from .backend import Backend
    from .chat import Conversation

HELP = """Commands:
  /set temperature 0.6    randomness (0: always the likeliest word); also /set parameter temperature 0.6
  /set top_p 0.95         nucleus sampling; also top_k, min_p, repeat_penalty, repeat_last_n,
                          presence_penalty, frequency_penalty, stop WORD...
  /set max_tokens 4000    cap each reply (off: no cap); Ollama's num_predict
  /set num_ctx 4096       use at most this much of the context
  /set seed 42            repeatable replies (off: random)
  /set think, /set nothink      reason before answering, or answer at once (also /set think on|off)
  /set hide-think on|off  show only a "Thinking..." line while the model reasons
  /set verbose, /set quiet      tokens/s and token counts after each answer, or not
  /set wordwrap, /set nowordwrap  wrap answers between words on the terminal, or not
  /set system TEXT        a system prompt (empty: none)
  /show                   the model and these settings (/show parameters, /show system)
  /show info              what the model is: architecture, parameters, context, quantisation
  /clear                  forget the conversation
  /save FILE, /load FILE  keep a conversation in a JSON file, or continue one
  /bye                    leave (or Ctrl-D)
Type \"\"\" to start and end a message of several lines; pasted text stays one message.
Ctrl-C stops an answer or clears the line; the conversation stays."""
PARAMETERS = {  # the names /set takes (r1local's and Ollama's) -> the sampling setting
    **{
        name: name
        for name in (
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "seed",
            "max_tokens",
            "repeat_penalty",
            "repeat_last_n",
            "presence_penalty",
            "frequency_penalty",
            "stop",
        )
    },
    "num_predict": "max_tokens",
    "num_ctx": "context_limit",
}
LOAD_OPTIONS = {"num_gpu": "--gpu-layers", "num_thread": "--threads"}  # fixed once the model is loaded
SWITCHES = {
    "think": ("think", True),
    "nothink": ("think", False),
    "verbose": ("verbose", True),
    "quiet": ("verbose", False),
    "wordwrap": ("wordwrap", True),
    "nowordwrap": ("wordwrap", False),
}
ON_OFF = {"on": True, "off": False}
THINK_SHOWN = {True: "on", False: "off", None: "as the model does"}


def slash_command(text: str, backend: Backend, model: str, conversation: Conversation) -> bool:
    """Carry out one /command; False means leave."""
    word, _, arg = text.partition(" ")
    arg = arg.strip()
    if word in ("/bye", "/exit", "/quit"):
        return False
    if word in ("/help", "/?"):
        err.print(HELP, markup=False)
    elif word == "/set":
        _set(conversation, *_split(arg))
    elif word == "/show":
        _show(backend, model, conversation, arg.lower())
    elif word in ("/clear", "/reset"):
        conversation.messages.clear()
        err.print("Conversation cleared.", style="dim")
    elif word == "/save" and arg:
        Path(arg).expanduser().write_text(
            json.dumps(
                {"model": model, "system": conversation.system, "messages": conversation.messages},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )
        err.print(f"Saved {plural(len(conversation.messages), 'message')} to {arg}.", style="dim", markup=False)
    elif word == "/load" and arg:
        _load(conversation, Path(arg).expanduser())
    else:
        err.print(f"Unknown command {text!r}. Type /help for the commands.", style="dim", markup=False)
    return True


def _split(arg: str) -> tuple[str, str]:
    key, _, value = arg.partition(" ")
    key = key.strip().lower().replace("-", "_")
    if key == "parameter":  # Ollama: /set parameter NAME VALUE
        key, _, value = value.strip().partition(" ")
        key = key.strip().lower()
    return key, value.strip()


def _set(conversation: Conversation, key: str, value: str) -> None:
    if key == "system":
        conversation.system = value or None
        err.print("System prompt " + ("set." if value else "removed."), style="dim")
    elif key in SWITCHES and not value:
        attribute, on = SWITCHES[key]
        setattr(conversation, attribute, on)
        err.print(
            f"{key} {'on' if on else 'off'}." if key in ("think", "verbose", "wordwrap") else f"{key}.", style="dim"
        )
    elif key in ("think", "hide_think") and value.lower() in ON_OFF:
        setattr(conversation, key, ON_OFF[value.lower()])
        err.print(f"{key.replace('_', '-')} {value.lower()}.", style="dim")
    elif key in LOAD_OPTIONS:
        err.print(f"{key} is set when the model loads: start chat again with {LOAD_OPTIONS[key]} N.", style="dim")
    elif key in PARAMETERS and value:
        _set_parameter(conversation, PARAMETERS[key], value)
    else:
        err.print(
            "Usage: /set temperature|top_p|top_k|max_tokens|num_ctx|seed|stop... VALUE (or /set parameter "
            "NAME VALUE), /set think|nothink, /set verbose|quiet, /set hide-think on|off, /set system TEXT",
            style="dim",
            markup=False,
        )


def _set_parameter(conversation: Conversation, name: str, value: str) -> None:
    raw: object = value.split() if name == "stop" else value
    if isinstance(raw, str) and (raw.lower() in ("off", "none") or (name == "max_tokens" and raw == "-1")):
        raw = None  # no cap (Ollama's num_predict -1), random seed
    try:
        conversation.params = SamplingParams(**{**conversation.params.model_dump(exclude_unset=True), name: raw})
    except ValidationError as error:
        err.print(f"{name}: {error.errors()[0]['msg']}.", style="red", markup=False)
        return
    err.print(f"{name} = {getattr(conversation.params, name)}", style="dim", markup=False)


def _show(backend: Backend, model: str, conversation: Conversation, what: str) -> None:
    if what == "info":
        from .show import describe, facts_table

        out.print(facts_table(describe(model)[1]))
        return
    if what == "system":
        out.print(conversation.system or "(no system prompt)", markup=False)
        return
    p = conversation.params
    preset = presets.find(model)

    def sampler(name: str) -> str:  # a value the command did not set is the preset's, where it has one
        if name not in p.model_fields_set and preset is not None and name in preset.parameters:
            return f"{preset.parameters[name]} (the preset's)"
        return str(getattr(p, name))

    lines = [
        f"model        {model} ({backend.where})",
        f"think        {THINK_SHOWN[conversation.think]}" + (" (hidden)" if conversation.hide_think else ""),
        f"temperature  {sampler('temperature')}",
        f"top_p        {sampler('top_p')}",
        f"top_k        {p.top_k or 'off'}",
        f"max_tokens   {p.max_tokens or 'off'}",
        f"num_ctx      {p.context_limit or 'the whole context'}",
        f"seed         {'random' if p.seed is None else p.seed}",
        f"stop         {' '.join(p.stop) or '-'}",
        f"verbose      {'on' if conversation.verbose else 'off'}",
        f"system       {conversation.system or '-'}",
        f"messages     {len(conversation.messages)}",
    ]
    out.print("\n".join(lines), markup=False)


def stats(done: Done) -> str:
    """What /set verbose shows after an answer, as Ollama's counts and rates."""
    usage, timings = done.usage, done.timings
    return (
        f"prompt: {plural(usage.prompt_tokens, 'token')}, {timings.prompt_tokens_per_s:.1f} tokens/s; "
        f"answer: {plural(usage.completion_tokens, 'token')}, {timings.generation_tokens_per_s:.1f} tokens/s; "
        f"first token after {timings.ttft_s:.2f} s"
    )


def _load(conversation: Conversation, path: Path) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        messages = data["messages"]
        if not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise ValueError("messages must be user and assistant turns with text")
    except (OSError, ValueError, KeyError, TypeError) as error:
        err.print(f"Cannot load {path}: {error}", style="red", markup=False)
        return
    conversation.messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    conversation.system = data.get("system") if isinstance(data.get("system"), str) else None
    err.print(f"Loaded {plural(len(messages), 'message')} from {path}.", style="dim", markup=False)
