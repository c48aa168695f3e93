"""Named presets, as Ollama users make them with a Modelfile or /api/create: a model with its own
system prompt, parameters and opening messages, kept as one JSON file each in R1LOCAL_HOME/presets.
A preset's name resolves to its base model everywhere a model name is read; its settings are
applied under a request's own (what the request sets wins)."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import config
from .errors import UsageError

if TYPE_CHECKING:
    from .engine.speculative import Speculation
    from .request import ChatRequest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?::[A-Za-z0-9._-]{1,64})?$")  # never a path
MAX_PRESET_BYTES = 1 << 20
SAMPLING = {
    "temperature": float,
    "top_p": float,
    "top_k": int,
    "min_p": float,
    "repeat_penalty": float,
    "repeat_last_n": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "seed": int,
}
OTHERS = {"num_predict": int, "num_ctx": int, "stop": str}  # Ollama's parameters that are no sampler field
# how the preset's model loads (serve/run/chat's --draft, --spec, --draft-max, --draft-min, --draft-p-min, --kv-type)
LOAD = {"draft": str, "spec": str, "draft_max": int, "draft_min": int, "draft_p_min": float, "kv_type": str}
DRAFT_BOUNDS = {"draft_max": "draft_max", "draft_min": "draft_min", "draft_p_min": "p_min"}  # to Speculation's


@dataclass(frozen=True)
class Preset:
    name: str
    base: str  # the model it runs: a catalog name, a downloaded model or a command-line model's name
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict] = field(default_factory=list)
    template: str | None = None  # a Jinja chat template rendered in place of the model's (check_template)

    def parameters_text(self) -> str:
        """Ollama's /api/show form: one "key value" line per value."""
        return "\n".join(
            f"{key} {json.dumps(v) if isinstance(v, str) else v}"
            for key, value in self.parameters.items()
            for v in (value if isinstance(value, list) else [value])
        )

    def modelfile(self) -> str:
        lines = [f"FROM {self.base}"]
        if self.system:
            lines.append(f'SYSTEM """{self.system}"""')
        lines += [f"PARAMETER {line}" for line in self.parameters_text().splitlines()]
        lines += [f'MESSAGE {m["role"]} """{m["content"]}"""' for m in self.messages]
        return "\n".join(lines) + "\n"

    @property
    def kv_type(self) -> str | None:
        return self.parameters.get("kv_type")

    def speculation(self) -> Speculation | None:
        """The drafts its model loads with (draft: a model name, a path from the command line, or auto)."""
        return speculation_of(self.parameters)

    def loads_its_own(self) -> bool:
        """Whether its model loads with settings of its own (a draft, a KV type): its own loaded copy."""
        return any(key in LOAD for key in self.parameters)

    def applied(self, chat: ChatRequest) -> ChatRequest:
        """`chat` with this preset's settings where it sets none of its own."""
        from .request import (
            Sampling,  # the request layer loads with the server, not with every command
        )

        messages = list(chat.messages)
        system = (
            []
            if not self.system or any(m.get("role") == "system" for m in messages)
            else [{"role": "system", "content": self.system}]
        )
        head = [m for m in messages if m.get("role") == "system"] + system
        body = [m for m in messages if m.get("role") != "system"]
        p = self.parameters
        sampling = Sampling(**{**{k: v for k, v in p.items() if k in SAMPLING}, **chat.sampling.fields()})
        return replace(
            chat,
            messages=head + list(self.messages) + body,
            sampling=sampling,
            max_tokens=chat.max_tokens or p.get("num_predict"),
            stop=chat.stop or list(p.get("stop", [])),
            context_limit=chat.context_limit or p.get("num_ctx"),
            template=chat.template or self.template,
        )


def with_preset(name: str | None, chat: ChatRequest) -> ChatRequest:
    """A request to a preset gets its system prompt, opening messages and parameters."""
    preset = find(name) if name else None
    return preset.applied(chat) if preset else chat


def folder() -> Path:
    return config.home() / "presets"


def _file(name: str) -> Path:
    return folder() / f"{canonical(name).replace(':', '@')}.json"


def canonical(name: str) -> str:
    """Ollama's form: a name without a tag is NAME:latest."""
    return name if ":" in name else f"{name}:latest"


def check_name(name: str) -> str:
    """A preset's name: Ollama's form, and one no other model answers to (r1:7b, deepseek-r1, ...)."""
    from .names import Kind, ModelAddress

    if not NAME.match(name):
        raise UsageError(
            f"{name!r} is not a model name: use letters, digits, '.', '_' and '-', and one ':TAG'.", param="model"
        )
    if ModelAddress.parse(name).kind is not Kind.SERVED:
        raise UsageError(f"{name} is a catalog name; give the preset a name of its own.", param="model")
    return canonical(name)


def find(name: str) -> Preset | None:
    if not NAME.match(name):
        return None
    try:
        data = json.loads(_file(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Preset(**data)


def all_presets() -> list[Preset]:
    found = (find(path.stem.replace("@", ":")) for path in sorted(folder().glob("*.json")))
    return [preset for preset in found if preset is not None]


def base_of(name: str) -> str:
    """The model a name means: a preset's base, else the name itself."""
    preset = find(name)
    return preset.base if preset else name


def create(
    name: str,
    base: str,
    *,
    system: str | None = None,
    parameters: dict | None = None,
    messages: list[dict] | None = None,
    template: str | None = None,
) -> Preset:
    """A preset over `base` (itself a preset: settings merge, this one's winning)."""
    name = check_name(name)
    parent = find(base)
    parameters = {**(parent.parameters if parent else {}), **_checked(parameters or {})}
    _checked_load(parameters)
    preset = Preset(
        name,
        parent.base if parent else base,
        system if system is not None else (parent.system if parent else None),
        parameters,
        [*(parent.messages if parent else []), *_checked_messages(messages or [])],
        check_template(template) if template is not None else (parent.template if parent else None),
    )
    save(preset)
    return preset


def copy(source: str, destination: str) -> Preset:
    """A copy of a preset, or a new preset naming a model as it is."""
    found = find(source)
    preset = replace(found, name=check_name(destination)) if found else Preset(check_name(destination), source)
    save(preset)
    return preset


def save(preset: Preset) -> None:
    data = json.dumps(asdict(preset), ensure_ascii=False, indent=1)
    if len(data) > MAX_PRESET_BYTES:
        raise UsageError(f"The preset is larger than {MAX_PRESET_BYTES} bytes.", "Send a shorter system prompt.")
    folder().mkdir(parents=True, exist_ok=True)
    path = _file(preset.name)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(data, encoding="utf-8")
    os.replace(temporary, path)


def remove(name: str) -> bool:
    try:
        _file(name).unlink()
    except (FileNotFoundError, ValueError):
        return False
    return True


def speculation_of(parameters: dict) -> Speculation | None:
    from .engine.speculative import Speculation

    source = "draft" if parameters.get("draft") else parameters.get("spec")
    if source is None:
        return None
    bounds = {field: parameters[key] for key, field in DRAFT_BOUNDS.items() if key in parameters}
    return Speculation(source, draft=parameters.get("draft"), **bounds)


def _checked_load(parameters: dict) -> None:
    """A preset's load settings, refused as serve's options would be."""
    if parameters.get("kv_type", "f16") not in config.KV_TYPES:
        raise UsageError(
            f"kv_type {parameters['kv_type']!r}: choose one of {', '.join(config.KV_TYPES)}.", param="parameters"
        )
    if parameters.get("spec", "ngram") != "ngram":
        raise UsageError(
            f"spec {parameters['spec']!r}: the one source is ngram (or a draft model).", param="parameters"
        )
    if "spec" in parameters and "draft" in parameters:
        raise UsageError("spec ngram and draft are two sources of drafts: choose one.", param="parameters")
    if any(key in parameters for key in DRAFT_BOUNDS) and speculation_of(parameters) is None:
        raise UsageError(
            "draft_max, draft_min and draft_p_min bound a draft: set draft MODEL or spec ngram too.",
            param="parameters",
        )
    try:
        speculation_of(parameters)  # checks the bounds
    except UsageError as error:
        raise UsageError(error.message, error.hint, param="parameters") from None


def _checked(parameters: dict) -> dict:
    kinds = {**SAMPLING, **OTHERS, **LOAD}
    checked = {}
    for key, value in parameters.items():
        if key not in kinds:
            raise UsageError(f"Unknown parameter {key!r}; presets take: {', '.join(kinds)}.", param="parameters")
        values = value if isinstance(value, list) else [value]
        try:
            converted = [kinds[key](v) for v in values]
        except (TypeError, ValueError):
            raise UsageError(
                f"Parameter {key} must be a {kinds[key].__name__}, not {value!r}.", param="parameters"
            ) from None
        checked[key] = converted if key == "stop" else converted[-1]
    _checked_load(checked)
    return checked


GO_TEMPLATE = re.compile(r"\{\{-?\s*(\.|\$|(range|if|with|end|else|template|block|define)\b)")


def check_template(source: str) -> str | None:
    """A preset's TEMPLATE: a Jinja chat template, as GGUF files carry (messages, add_generation_prompt,
    bos_token, eos_token), compiled in the sandbox every chat template renders in. Ollama's Go
    templates ({{ .Prompt }}, {{ range .Messages }}) are refused by name; "" keeps the model's."""
    if not source.strip():
        return None
    import jinja2

    from .engine.template_sandbox import environment  # jinja loads only where a template is given

    try:
        environment().parse(source)
    except (jinja2.TemplateSyntaxError, RecursionError) as error:
        if GO_TEMPLATE.search(source):
            raise UsageError(
                "TEMPLATE is an Ollama Go template ({{ .Prompt }}, {{ range .Messages }}); r1local renders Jinja "
                "chat templates, as GGUF files carry them.",
                "Give a Jinja template over messages, add_generation_prompt, bos_token and eos_token, or leave "
                "TEMPLATE out to keep the model's own (see docs/api.md).",
                param="template",
            ) from None
        why = error.message if isinstance(error, jinja2.TemplateSyntaxError) else "it nests too deeply"
        raise UsageError(f"TEMPLATE is not a valid Jinja chat template: {why}.", param="template") from None
    return source


def _checked_messages(messages: list[dict]) -> list[dict]:
    for message in messages:
        if message.get("role") not in ("user", "assistant", "system") or not isinstance(message.get("content"), str):
            raise UsageError(
                "Each message needs a role (user, assistant or system) and text content.", param="messages"
            )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def parse_modelfile(text: str) -> dict:
    """A Modelfile's FROM, SYSTEM, PARAMETER, MESSAGE and TEMPLATE, as create() takes them.
    Values may be quoted, or span lines between triple quotes."""
    fields: dict[str, Any] = {"parameters": {}, "messages": []}
    for keyword, value in _instructions(text):
        if keyword == "FROM":
            fields["base"] = value
        elif keyword in ("SYSTEM", "TEMPLATE"):
            fields[keyword.lower()] = value
        elif keyword == "PARAMETER":
            key, _, raw = value.partition(" ")
            raw = raw.strip()
            raw = shlex.split(raw)[0] if raw.startswith('"') else raw
            parameters = fields["parameters"]
            parameters[key] = [*parameters.get(key, []), raw] if key == "stop" else raw
        elif keyword == "MESSAGE":
            role, _, content = value.partition(" ")
            fields["messages"].append({"role": role, "content": content.strip()})
        elif keyword in ("LICENSE", "PARSER", "REQUIRES"):
            continue
        else:
            raise UsageError(
                f"The Modelfile's {keyword} is not supported here (FROM, SYSTEM, PARAMETER, MESSAGE, TEMPLATE are)."
            )
    if "base" not in fields:
        raise UsageError("The Modelfile has no FROM line.", "Start it with FROM MODEL, e.g. FROM r1:7b.")
    return fields


def _instructions(text: str):
    """(KEYWORD, value) pairs; a value between \"\"\" quotes may span lines."""
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        rest = rest.strip()
        head, quoted, tail = rest.partition('"""')
        if quoted:  # FROM x / MESSAGE user """...""": the quotes open after the first word(s)
            body = tail
            while '"""' not in body:
                try:
                    body += "\n" + next(lines)
                except StopIteration:
                    raise UsageError(f'The Modelfile\'s {keyword.upper()} opens """ and never closes it.') from None
            rest = head + body[: body.index('"""')]
        elif rest.startswith('"') and rest.endswith('"') and len(rest) > 1 and keyword.upper() != "PARAMETER":
            rest = rest[1:-1]
        yield keyword.upper(), rest
