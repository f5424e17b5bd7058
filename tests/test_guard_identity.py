"""The inode number a WASI guest sees is the one the guard computes (its open check depends on it).

wasmtime reports ``ino`` as a SipHash-1-3 of the host's ``(st_dev, st_ino)`` (runtime/identity.py).
If a wasmtime upgrade changed that, every verified open would be refused (fail closed); this test
says so first, against a real guest.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from workbench import Sandbox
from workbench.runtime.identity import _sip_pair, siphash13, wasi_inode


def test_a_guest_sees_the_inode_the_guard_computes(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "f.txt").write_text("x")
    code = "import os\nprint(os.stat('/d/f.txt').st_ino, os.stat('/d/sub').st_ino, os.fstat(os.open('/d/f.txt', os.O_RDONLY)).st_ino)"
    result = Sandbox(["filesystem:read:/d"], root=tmp_path).run(code, lang="python")
    by_path, folder, by_descriptor = map(int, result.stdout.split())
    expected = wasi_inode(os.stat(tmp_path / "d" / "f.txt"))
    assert by_path == by_descriptor == expected
    assert folder == wasi_inode(os.stat(tmp_path / "d" / "sub"))


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_the_inlined_hash_is_the_general_one(dev: int, ino: int) -> None:
    assert _sip_pair(dev, ino) == siphash13(struct.pack("<QQ", dev, ino))

