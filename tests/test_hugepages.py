"""The command re-executes itself once with glibc's huge-page tunable, and malloc then really hands
out transparent huge pages; a tunable the user chose is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from r1local import hugepages

# After the re-exec, this prints the tunables and how much of a freshly touched 64 MiB malloc
# block sits in huge pages.
PROBE = """
from r1local.hugepages import reexec_with_huge_pages
reexec_with_huge_pages()
import ctypes, os
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
huge = next(line for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages"))
print(os.environ.get("GLIBC_TUNABLES", ""), int(huge.split()[1]) // 1024)
"""


def probe(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    return (out[0] if len(out) > 1 else ""), int(out[-1])


needs_thp = pytest.mark.skipif(not hugepages.available(), reason="Linux with glibc and transparent huge pages")


@needs_thp
def test_the_command_reexecutes_with_huge_pages():
    tunables, huge_mib = probe()
    assert tunables == "glibc.malloc.hugetlb=1"
    assert huge_mib >= 32  # most of the 64 MiB block


@needs_thp
def test_other_tunables_are_kept_and_a_chosen_setting_is_left_alone():
    assert probe(GLIBC_TUNABLES="glibc.malloc.arena_max=2")[0] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert probe(GLIBC_TUNABLES="glibc.malloc.hugetlb=0")[0] == "glibc.malloc.hugetlb=0"


def test_not_wanted_where_the_platform_has_no_huge_pages(monkeypatch, tmp_path):
    setting = tmp_path / "enabled"
    setting.write_text("always madvise [never]\n")
    monkeypatch.setattr(hugepages, "THP_ENABLED", setting)
    assert not hugepages.available() and not hugepages.wanted()
    monkeypatch.setattr(hugepages, "THP_ENABLED", tmp_path / "missing")
    assert not hugepages.available()
