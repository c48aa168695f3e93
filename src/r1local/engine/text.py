"""Text from outside is not always valid Unicode: lone surrogates come from JSON escapes
("\\ud800") and from command-line bytes that are not UTF-8. They become U+FFFD, the replacement
character, before anything encodes them."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)
