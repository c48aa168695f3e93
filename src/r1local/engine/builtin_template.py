"""llama.cpp's built-in chat templates, for GGUFs that carry none: the one llama.cpp would pick
for the model's architecture, rendered by llama.cpp itself (llama_chat_apply_template), so such a
model is not prompted in a format it never saw (ChatML is the last resort, as in llama.cpp)."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from .bindings import C

# GGUF architecture -> llama.cpp's name for the template its models are trained on
_BY_ARCHITECTURE = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "phi3": "phi3",
    "command-r": "command-r",
    "cohere2": "command-r",
    "deepseek": "deepseek",
    "deepseek2": "deepseek2",
    "exaone": "exaone3",
    "granite": "granite",
    "granitemoe": "granite",
    "chatglm": "chatglm4",
    "minicpm": "minicpm",
    "orion": "orion",
    "llama4": "llama4",
    "rwkv6": "rwkv-world",
    "rwkv7": "rwkv-world",
}


def builtin_name(architecture: str, has_token: Callable[[str], bool]) -> str:
    """The template llama.cpp knows for an architecture; Llama's depends on the vocabulary
    (Llama 3 ends turns with <|eot_id|>, Llama 2 wraps them in [INST])."""
    if architecture == "llama":
        if has_token("<|eot_id|>"):
            return "llama3"
        return "chatml" if has_token("<|im_start|>") else "llama2"
    return _BY_ARCHITECTURE.get(architecture, "chatml")


def apply_builtin(name: str, messages: list[dict], add_generation_prompt: bool) -> str:
    encoded = [(str(m.get("role", "user")).encode(), str(m.get("content") or "").encode()) for m in messages]
    chat = (C.llama_chat_message * len(encoded))(*(C.llama_chat_message(r, c) for r, c in encoded))
    size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
    buf = ctypes.create_string_buffer(size)
    n = C.llama_chat_apply_template(name.encode(), chat, len(encoded), add_generation_prompt, buf, size)
    if n > size:  # llama.cpp says how much room it needs
        buf = ctypes.create_string_buffer(n)
        n = C.llama_chat_apply_template(name.encode(), chat, len(encoded), add_generation_prompt, buf, n)
    if n < 0:
        raise ValueError(f"llama.cpp has no built-in chat template {name!r}")
    return buf.raw[:n].decode("utf-8", "replace")
