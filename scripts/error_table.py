"""Write docs/api.md's error table from the error classes (src/r1local/errors.py), the one source of
exit codes, HTTP statuses and error codes. tests/test_errors.py fails when the file is out of date.

    python scripts/error_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
START = "<!-- error table: written by scripts/error_table.py from src/r1local/errors.py -->\n"
END = "<!-- end of the error table -->\n"


def with_table(text: str) -> str:
    """`text` (docs/api.md) with the table between its markers replaced by the current one."""
    import r1local.cli  # noqa: F401  (every error class is imported with the command line
    import r1local.server  # noqa: F401  and the server)
    from r1local.errors import markdown_table

    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + START + markdown_table() + END + tail


if __name__ == "__main__":
    sys.path.insert(0, str(DOC.parent.parent / "src"))
    DOC.write_text(with_table(DOC.read_text(encoding="utf-8")), encoding="utf-8")
