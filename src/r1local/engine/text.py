"""Text from outside is not always valid Unicode: lone surrogates come from JSON escapes
("\\ud800") and from command-line bytes that are not UTF-8. They become U+FFFD, the replacement
character, before anything encodes them."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def replace_surrogates(value: Any) -> Any:
    """`value` with every string in it (dict keys and nested lists too) cleaned."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value
