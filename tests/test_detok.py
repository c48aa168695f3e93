"""Incremental UTF-8 decoding and stop-string holding, at every split position."""

from r1local.engine.detok import Detokenizer, StopMatcher


def test_multibyte_characters_split_anywhere_never_emit_half():
    data = "héllo → 世界 🙂!".encode()
    for cut in range(len(data) + 1):
        for cut2 in range(cut, len(data) + 1):
            d = Detokenizer()
            parts = [d.feed(data[:cut]), d.feed(data[cut:cut2]), d.feed(data[cut2:]), d.flush()]
            assert "".join(parts) == data.decode()
            assert all("\ufffd" not in p for p in parts)


def test_invalid_bytes_become_replacement_at_flush():
    d = Detokenizer()
    assert d.feed(b"ok\xe4\xb8") == "ok"
    assert d.flush() == "\ufffd"


def test_stop_string_split_over_chunks_is_held_then_dropped():
    text = "Answer: 42\nUser: next"
    for cut in range(len(text) + 1):
        m = StopMatcher(["\nUser:"])
        first, hit1 = m.feed(text[:cut])
        second, hit2 = m.feed(text[cut:]) if not hit1 else ("", True)
        assert first + second == "Answer: 42"
        assert hit1 or hit2


def test_held_prefix_is_released_when_it_is_not_a_stop():
    m = StopMatcher(["STOP"])
    assert m.feed("go ST") == ("go ", False)
    assert m.feed("ART") == ("START", False)
    assert m.feed("ST") == ("", False)
    assert m.flush() == "ST"


def test_earliest_of_several_stops_wins():
    m = StopMatcher(["b", "a"])
    assert m.feed("xxabc") == ("xx", True)


def test_no_stops_passes_through():
    assert StopMatcher([]).feed("anything") == ("anything", False)
