"""Memory inspection (issue 13, point 3): a read-only snapshot, searched, read, browsed."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from workbench import Sandbox
from workbench.errors import MemoryAccessError
from workbench.runtime.memory_snapshot import MemorySnapshot
from workbench.runtime.wasm_facts import DataSegment

SECRET = r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *token = malloc(64);
    strcpy(token, "tok-");
    strcat(token, "7f3a9c-SECRET");   /* assembled at run time: only the heap holds the whole */
    printf("%p\n", (void *)token);
    return 0;
}
"""

WAT = """(module
  (memory (export "memory") 1)
  (global (export "counter") (mut i32) (i32.const 7))
  (global (export "ratio") f64 (f64.const 0.5))
  (data (i32.const 16) "hello\\00world")
  (data (i32.const 100) "\\ff\\fe\\fd\\fc\\01\\00\\00\\00")
  (func (export "_start") (global.set 0 (i32.const 42)) (unreachable)))
"""


@pytest.fixture(scope="module", autouse=True)
def c_ready() -> None:
    from workbench.languages import c as cadapter

    cadapter.compile_c("int main(void) { return 0; }\n", "warm")


def test_a_search_finds_what_the_guest_wrote_at_the_address_it_printed(tmp_path: Path) -> None:
    result = Sandbox(root=tmp_path).run(SECRET, lang="c", name="secret", keep_memory=True)
    assert result.ok, result.stderr
    printed = int(result.stdout, 16)
    snapshot = result.memory
    assert snapshot.find("tok-7f3a9c-SECRET") == [printed]
    assert snapshot.cstring(printed) == "tok-7f3a9c-SECRET"
    assert snapshot.stack_pointer is not None and 0 < snapshot.stack_pointer <= snapshot.size
    assert snapshot.data_segments and all(s.end <= snapshot.size for s in snapshot.data_segments)
    assert printed not in range(snapshot.data_segments[0].offset, snapshot.data_segments[-1].end)  # on the heap
    assert "tok-7f3a9c-SECRE" in snapshot.hexdump(printed, 32)


def test_memory_is_kept_only_when_asked_and_after_a_trap(tmp_path: Path) -> None:
    sandbox = Sandbox(root=tmp_path)
    assert sandbox.run(WAT).memory is None
    result = sandbox.run(WAT, keep_memory=True)
    assert result.fault is not None and result.fault.kind == "unreachable"
    memory = result.memory
    assert memory.size == 65536
    assert memory.globals == {"counter": 42, "ratio": 0.5}  # the value at the trap, not the initial one
    assert memory.data_segments == (DataSegment(0, 16, 11), DataSegment(1, 100, 8))
    assert memory.find(b"world") == [22] and memory.find("o") == [20, 23]
    assert memory.cstring(16) == "hello" and memory.cstring(22) == "world"
    assert memory.read_u8(100) == 0xFF and memory.read_i8(100) == -1
    assert memory.read_u32(100) == 0xFCFDFEFF and memory.read_i32(100) == -50462977
    assert memory.read_i64(100) == struct.unpack("<q", bytes.fromhex("fffefdfc01000000"))[0]
    assert memory.read_i16(100) == -257 and memory.read_u16(100) == 0xFEFF
    assert memory.segment_at(20) == DataSegment(0, 16, 11) and memory.segment_at(50) is None
    assert memory.hexdump(16, 16).startswith("00000010  68 65 6c 6c 6f 00 77 6f 72 6c 64 00")


def test_the_snapshot_is_a_copy(tmp_path: Path) -> None:
    memory = Sandbox(root=tmp_path).run(WAT, keep_memory=True).memory
    data = memory.tobytes()
    assert isinstance(data, bytes)  # immutable: nothing can write through it
    with pytest.raises(TypeError):
        data[0] = 1  # type: ignore[index]


@pytest.mark.parametrize("addr, length", [(-1, 1), (0, -1), (65536, 1), (65535, 2), (2**63, 1), (1, 2**64),
                                          (65536, 0)])
def test_bad_addresses_raise_our_error(tmp_path: Path, addr: int, length: int) -> None:
    memory = MemorySnapshot(bytes(65536))
    if (addr, length) == (65536, 0):
        assert memory.read(addr, length) == b""  # the end itself, empty: allowed
        return
    with pytest.raises(MemoryAccessError):
        memory.read(addr, length)
    with pytest.raises(MemoryAccessError):
        memory.hexdump(addr, length)


@pytest.mark.parametrize("bad", [1.5, "16", None, True])
def test_non_integer_addresses_raise_our_error(bad: object) -> None:
    memory = MemorySnapshot(bytes(64))
    with pytest.raises(MemoryAccessError):
        memory.read_i32(bad)  # type: ignore[arg-type]
    with pytest.raises(MemoryAccessError):
        memory.cstring(bad)  # type: ignore[arg-type]
    with pytest.raises(MemoryAccessError):
        memory.find(b"")


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=4))
def test_find_agrees_with_a_plain_scan(data: bytes, pattern: bytes) -> None:
    expected = [i for i in range(len(data)) if data[i:i + len(pattern)] == pattern]
    assert MemorySnapshot(data).find(pattern) == expected


@given(st.binary(max_size=64), st.integers(min_value=-2**70, max_value=2**70), st.integers(min_value=-5, max_value=100))
def test_reads_are_in_bounds_or_refused(data: bytes, addr: int, length: int) -> None:
    memory = MemorySnapshot(data)
    if 0 <= addr and 0 <= length and addr + length <= len(data):
        assert memory.read(addr, length) == data[addr:addr + length]
    else:
        with pytest.raises(MemoryAccessError):
            memory.read(addr, length)


def test_the_widget_browses_and_searches(tmp_path: Path) -> None:
    from workbench.jupyter.memory_widget import MemoryBrowser

    memory = Sandbox(root=tmp_path).run(WAT, keep_memory=True).memory
    browser = MemoryBrowser(memory)
    assert browser.find("world") == [22] and browser.address.value == "0x16"
    assert "77 6f 72 6c 64" in browser.view.value
    assert browser.find("hex:fffe") == [100]
    browser.show("0x10000")  # past the end: an error shown, the view kept
    assert "outside the memory" in browser.status.value and browser.current == 100
    browser.show("nonsense")
    assert "not an address" in browser.status.value
    assert memory.widget() is not None
