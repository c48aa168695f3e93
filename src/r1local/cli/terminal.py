"""What model text may do to a terminal: nothing but print. Control sequences are removed (a prompt
injection could otherwise retitle the window, write the clipboard with OSC 52, hide links with OSC 8
or clear the screen), and prose is wrapped at word boundaries, never inside a word or a URL. Both
work on a stream: a sequence or a word split across chunks is held until it is whole."""

from __future__ import annotations

import json
import re

from rich.cells import cell_len
from rich.text import Text

# every C0 and C1 control sequence, whole: CSI, the string sequences (OSC, DCS, SOS, PM, APC) up to
# their terminator, two-character escapes, then any control character left (newline and tab stay)
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[ -/]*[0-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
# the start of a sequence that the next chunk may complete
_UNFINISHED = re.compile(
    r"(?:(?:\x1b\[|\x9b)[0-?]*[ -/]*|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*\x1b?|\x1b[ -/]*)\Z"
)
MAX_HELD = 4096  # an unfinished sequence longer than this was never one: its text goes out, its controls not


def strip_controls(text: str) -> str:
    """`text` without any control sequence or character but newline and tab."""
    return _SEQUENCE.sub("", text)


def json_text(data: object) -> str:
    """`data` as indented JSON whose strings hold no raw control character: JSON escapes C0 itself,
    and C1 (which some terminals obey) is escaped here too; a JSON reader gets the same text back."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return re.sub(r"[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)


class ControlFilter:
    """strip_controls over a stream of chunks."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        unfinished = _UNFINISHED.search(text)
        cut = unfinished.start() if unfinished and len(text) - unfinished.start() <= MAX_HELD else len(text)
        self._held = text[cut:]
        return strip_controls(text[:cut])

    def end(self) -> str:
        """What is left at the end of the stream: an unfinished sequence is dropped."""
        self._held = ""
        return ""


class WordWrap:
    """Break lines at spaces before `width` columns, as a terminal would not: a word that does not fit
    starts the next line, whole; one longer than a line is written unbroken (the terminal folds it,
    and a URL stays one piece that it recognises). Tabs count as reaching the next multiple of 8."""

    def __init__(self, width: int) -> None:
        self.width = max(width, 8)
        self._column = 0
        self._word = ""
        self._streaming = False  # the current word already starts its own line: it goes out as it comes

    def feed(self, text: str) -> str:
        out: list[str] = []
        for piece in re.split(r"([ \t\n])", text):
            if piece == "\n":
                out += [self._end_word(), "\n"]
                self._column = 0
            elif piece in (" ", "\t"):
                out.append(self._end_word())
                after = self._column + 1 if piece == " " else (self._column // 8 + 1) * 8
                if after > self.width:
                    out.append("\n")
                    self._column = 0
                else:
                    out.append(piece)
                    self._column = after
            elif piece:
                out.append(self._add(piece))
        return "".join(out)

    def _add(self, piece: str) -> str:
        if self._streaming:
            self._column += cell_len(piece)
            return piece
        self._word += piece
        if self._column + cell_len(self._word) <= self.width:
            return ""
        word, self._word, self._streaming = self._word, "", True
        head = "\n" if self._column else ""
        self._column = cell_len(word)
        return head + word

    def _end_word(self) -> str:
        word, self._word, self._streaming = self._word, "", False
        self._column += cell_len(word)
        return word

    def end(self) -> str:
        """The last word, at the end of the stream."""
        return self._end_word()

    def restart(self) -> None:
        """Something else was written and ended its line: count from the first column again."""
        self._column = 0


def wrap_words(text: Text, width: int) -> Text:
    """`text` with each line broken at spaces to fit `width` columns, the wrapped part indented as the
    line's start; a word longer than a line stays whole (styles are kept)."""
    paragraphs = []
    for line in text.split("\n", allow_blank=True):
        plain = line.plain
        indent = len(plain) - len(plain.lstrip(" "))
        pieces, start, prefix, placed, last_end = [], 0, 0, False, 0
        for word in re.finditer(r"\S+", plain):
            if placed and prefix + cell_len(plain[start : word.end()]) > width:
                pieces.append(line[start:last_end])
                start, prefix = word.start(), indent
            placed, last_end = True, word.end()
        pieces.append(line[start:])
        paragraphs.append(Text("\n" + " " * indent).join(pieces))
    return Text("\n").join(paragraphs)
