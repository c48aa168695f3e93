"""The prompt shapes llama-server's clients send, read as its tokenize_input_prompts reads them:
text, token ids, ids and text mixed in one prompt (`[12, "text", 34]`), `{"prompt_string": ...}`
objects (and, for embeddings, `{"content": [text parts]}`), and lists of these for several prompts.
A list holding a token id at its top level is one prompt; any other list is a list of prompts."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

Prompt = str | list[int | str]  # text, or token ids and text pieces mixed


def is_piece(item: object) -> bool:
    return isinstance(item, (int, str)) and not isinstance(item, bool)


def split(given: Any, *, param: str, limit: int, content_parts: bool = False) -> list[Prompt]:
    """The prompts in `given`, each text or a list of ids and text; a clear 400 naming `param` else."""
    if isinstance(given, list) and any(isinstance(item, int) for item in given):
        return [one(given, param=param, content_parts=content_parts)]
    if not isinstance(given, list):
        return [one(given, param=param, content_parts=content_parts)]
    if not given:
        raise UsageError(f"{param} is empty: send a text, a list of texts or token ids.", param=param)
    if len(given) > limit:
        raise UsageError(f"{param} holds {len(given)} prompts; at most {limit} are taken at once.", param=param)
    return [one(item, param=param, content_parts=content_parts) for item in given]


def one(given: Any, *, param: str, content_parts: bool = False) -> Prompt:
    """One prompt: text, a non-empty list of ids and text pieces, or a prompt object."""
    if isinstance(given, str):
        return given
    if isinstance(given, list) and given and all(is_piece(item) for item in given):
        return given
    if isinstance(given, dict):
        if "multimodal_data" in given:
            raise UsageError("multimodal_data is not served: the models here take text.", param=param)
        text = given.get("prompt_string")
        if text is not None and not isinstance(text, dict):
            return one(text, param=param)
        parts = given.get("content")
        if content_parts and isinstance(parts, list) and parts and all(_text_part(part) for part in parts):
            return "".join(part["text"] for part in parts)
    accepted = 'a text, a list of token ids (text pieces may be mixed in) or {"prompt_string": ...}'
    if content_parts:
        accepted += ' or {"content": [text parts]}'
    raise UsageError(f"Each prompt in {param} must be {accepted}.", param=param)


def _text_part(part: object) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
