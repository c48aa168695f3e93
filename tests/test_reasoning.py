"""The <think> splitter gives the same split however the text is cut into chunks."""

from __future__ import annotations

import itertools

import pytest

from r1local.engine.events import ContentDelta, ReasoningDelta
from r1local.engine.reasoning import ReasoningSplitter

# (generated text, prompt opened <think>, expected reasoning, expected answer)
CASES = [
    ("<think>\nLet me see.\n</think>\n\nParis.", False, "Let me see.", "Paris."),
    ("Let me see.\n</think>\n\nParis.", True, "Let me see.", "Paris."),
    (" \n<think>a</think>b", False, "a", "b"),
    ("\n\n</think>\n\nDirect.", True, "", "Direct."),
    ("no tags at all", False, "", "no tags at all"),
    ("keep <think> inside", False, "", "keep <think> inside"),
    ("1 < 2 and </thin", True, "1 < 2 and </thin", ""),  # cut by max_tokens mid-tag
    ("still thinking\n", True, "still thinking", ""),
    ("<think>never closed", False, "never closed", ""),
    ("<thi", False, "", "<thi"),
    ("r</think>a</think>b", True, "r", "a</think>b"),
    ("思考 <>\n</think>\n答え ✓", True, "思考 <>", "答え ✓"),
    ("a\n\nb</think>x\n\ny\n", True, "a\n\nb", "x\n\ny\n"),
    ("", False, "", ""),
    ("", True, "", ""),
]


def run(chunks: list[str], in_reasoning: bool) -> tuple[str, str, list]:
    splitter = ReasoningSplitter(in_reasoning)
    events = [e for c in chunks for e in splitter.feed(c)] + splitter.flush()
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    content = "".join(e.text for e in events if isinstance(e, ContentDelta))
    return reasoning, content, events


def chunkings(text: str, max_cuts: int):
    """Every way to cut `text` at up to `max_cuts` positions."""
    for n in range(max_cuts + 1):
        for cuts in itertools.combinations(range(1, len(text)), n):
            bounds = (0, *cuts, len(text))
            yield [text[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("text,in_reasoning,reasoning,content", CASES)
def test_every_chunking_gives_the_same_split(text, in_reasoning, reasoning, content):
    # All cut sets up to 3 cuts cover each tag split at every position, alone and together
    # with a cut in the other tag; character by character covers every position at once.
    cases = list(chunkings(text, 3)) + [list(text)]
    for chunks in cases:
        got_reasoning, got_content, events = run(chunks, in_reasoning)
        assert (got_reasoning, got_content) == (reasoning, content), chunks
        assert all(e.text for e in events), "no empty deltas"


def test_reasoning_comes_before_answer_and_streams_early():
    splitter = ReasoningSplitter(in_reasoning=True)
    assert splitter.feed("Hmm, ") == [ReasoningDelta("Hmm,")]  # trailing space held
    assert splitter.feed("ok </th") == [ReasoningDelta(" ok")]  # partial tag held
    assert splitter.feed("ink>\n\nYes") == [ContentDelta("Yes")]
    assert splitter.feed(" sir") == [ContentDelta(" sir")]
    assert splitter.flush() == []


def test_answer_without_think_block_streams_once_it_cannot_be_a_tag():
    splitter = ReasoningSplitter(in_reasoning=False)
    assert splitter.feed("<th") == []
    assert splitter.feed("e answer") == [ContentDelta("<the answer")]
