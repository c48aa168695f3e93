"""A GBNF grammar's cost, bounded by its structure before llama.cpp builds it.

llama.cpp keeps one parser stack per alternative open at the current point, and checks every
candidate token against every stack (deduplicated by a linear search): the work grows with the
square of the alternatives open at once. `root ::= ("a" | "a" | ...)+` with 100 alternatives took
seconds per token, and a 60 KB grammar of thousands never finished one. So the alternatives a
point can open, through references, groups and optional items, are counted here (the grammar's
fan-out), and a grammar past MAX_FANOUT is refused with one line before it reaches the sampler.
Time is bounded too: the scheduler ends a request whose grammar takes too long for one token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UsageError

MAX_FANOUT = 64  # also the values one JSON-schema enum may have (request/grammar.py)
MAX_DEPTH = 64  # groups within groups

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<define>::=)
  | (?P<name>[A-Za-z0-9_-]+)
  | (?P<literal>"(?:\\.|[^"\\])*")
  | (?P<chars>\[(?:\\.|[^\]\\])*\])
  | (?P<token>!?<[^>]*>)
  | (?P<any>\.)
  | (?P<repeat>[*+?]|\{\s*\d*\s*(?:,\s*\d*\s*)?\})
  | (?P<punct>[|()])
""",
    re.VERBOSE,
)


@dataclass
class _Item:
    kind: str  # "terminal", "ref" or "group"
    name: str = ""  # a ref's rule
    alternatives: list[list[_Item]] = field(default_factory=list)  # a group's
    optional: bool = False  # may match nothing (*, ?, {0,...} or an empty literal)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _refusal(f"it cannot be read at character {pos} ({text[pos : pos + 20]!r})")
        kind = match.lastgroup  # every alternative is a named group
        if kind and kind != "space":
            out.append((kind, match.group()))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.rules: dict[str, list[list[_Item]]] = {}
        self.groups: list[list[list[_Item]]] = []

    def peek(self, offset: int = 0) -> tuple[str, str]:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else ("end", "")

    def rules_all(self) -> None:
        while self.peek()[0] != "end":
            kind, name = self.peek()
            if kind != "name" or self.peek(1)[0] != "define":
                raise _refusal(f"expected a rule name and ::= near {name!r}")
            self.pos += 2
            self.rules.setdefault(name, []).extend(self.alternatives(0))

    def alternatives(self, depth: int) -> list[list[_Item]]:
        if depth > MAX_DEPTH:
            raise _refusal(f"it nests groups more than {MAX_DEPTH} deep")
        alternatives = [self.sequence(depth)]
        while self.peek() == ("punct", "|"):
            self.pos += 1
            alternatives.append(self.sequence(depth))
        return alternatives

    def sequence(self, depth: int) -> list[_Item]:
        items: list[_Item] = []
        while True:
            kind, text = self.peek()
            if kind == "name" and self.peek(1)[0] == "define":
                return items  # the next rule starts
            if kind == "name":
                item = _Item("ref", name=text)
            elif kind in ("literal", "chars", "token", "any"):
                item = _Item("terminal", optional=text == '""')
            elif (kind, text) == ("punct", "("):
                self.pos += 1
                item = _Item("group", alternatives=self.alternatives(depth + 1))
                self.groups.append(item.alternatives)
                if self.peek() != ("punct", ")"):
                    raise _refusal("a group is not closed")
            else:
                return items
            self.pos += 1
            while self.peek()[0] == "repeat":
                repeat = self.peek()[1]
                item.optional = item.optional or repeat in "*?" or re.match(r"\{\s*(0\s*)?(,|\})", repeat) is not None
                self.pos += 1
            items.append(item)


class _Fanout:
    """The alternatives a point opens: a terminal opens one, a rule or group the sum of its
    alternatives', an alternative its first item's plus the next one's while they may be empty."""

    def __init__(self, rules: dict[str, list[list[_Item]]]) -> None:
        self.rules = rules
        self.memo: dict[str, tuple[int, bool]] = {}
        self.visiting: set[str] = set()

    def alternatives(self, alternatives: list[list[_Item]]) -> tuple[int, bool]:
        total, optional = 0, False
        for sequence in alternatives:
            fan, empty = self.sequence(sequence)
            total, optional = total + fan, optional or empty
        return total, optional

    def sequence(self, sequence: list[_Item]) -> tuple[int, bool]:
        total = 0
        for item in sequence:
            fan, empty = self.item(item)
            total += fan
            if not (empty or item.optional):
                return total, False
        return max(total, 1), True

    def item(self, item: _Item) -> tuple[int, bool]:
        if item.kind == "terminal":
            return 1, item.optional
        if item.kind == "group":
            return self.alternatives(item.alternatives)
        return self.rule(item.name)

    def rule(self, name: str) -> tuple[int, bool]:
        if name in self.memo:
            return self.memo[name]
        if name in self.visiting or name not in self.rules:  # recursion (llama.cpp refuses the left kind)
            return 1, False
        self.visiting.add(name)
        self.memo[name] = self.alternatives(self.rules[name])
        self.visiting.discard(name)
        return self.memo[name]


def fanout(grammar: str) -> int:
    """The most alternatives any rule or group of `grammar` opens at once."""
    parser = _Parser(_tokens(grammar))
    parser.rules_all()
    count = _Fanout(parser.rules)
    return max(
        [count.rule(name)[0] for name in parser.rules] + [count.alternatives(group)[0] for group in parser.groups],
        default=0,
    )


def check_cost(grammar: str, param: str = "grammar") -> None:
    """Refuse a grammar whose alternatives would make every token cost seconds."""
    opens = fanout(grammar)
    if opens > MAX_FANOUT:
        raise _refusal(f"one point of it opens {opens} alternatives at once, more than {MAX_FANOUT}", param)


def _refusal(reason: str, param: str = "grammar") -> UsageError:
    return UsageError(
        f"The grammar is refused: {reason}.",
        "Merge alternatives that start alike, or constrain less and check the answer afterwards.",
        param=param,
    )
