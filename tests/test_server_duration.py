"""keep_alive durations as Ollama reads them."""

from __future__ import annotations

import pytest

from r1local.errors import UsageError
from r1local.server.duration import parse_duration


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        (300, 300.0),
        ("300", 300.0),
        (0, 0.0),
        ("0", 0.0),
        (-1, None),
        ("-1", None),
        ("-5m", None),
        (2.5, 2.5),
        # past a century means forever: such values once overflowed /api/ps's expiry date for everyone
        ("inf", None),
        (float("inf"), None),
        (1e12, None),
        ("1e300", None),
        ("876000h", 3153600000.0),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 m", "m5", "", "5x", "1h-30m", True, "nan", float("nan"), "-nan"])
def test_bad_durations_are_usage_errors(value):
    with pytest.raises(UsageError) as error:
        parse_duration(value)
    assert error.value.param == "keep_alive"
