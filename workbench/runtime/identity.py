"""The inode number wasmtime's WASI reports for a host file, so the guard can check it opened the right one.

wasmtime (50) does not hand guests the host's inode: its preview 1 ``ino`` is a hash of the
host's ``(st_dev, st_ino)`` pair, ``DefaultHasher`` (SipHash-1-3 with zero keys) over the two
``u64`` values in native byte order (``crates/wasi/src/filesystem/unix.rs``, ``meta_identity``).
The guard computes the same number from its own ``lstat`` and compares it with what the
guest's freshly opened descriptor reports (``fd_filestat_get``): equal means wasmtime opened
the very object the guard checked, whatever happened to the path in between.

If a wasmtime upgrade changed the hash, every comparison would fail and the guard would refuse
(fail closed); ``tests/test_guard_identity.py`` pins the formula against a real guest.
"""

from __future__ import annotations

import os
import struct
import sys

from ..caches import memoized

__all__ = ["siphash13", "wasi_inode"]

_MASK = 0xFFFF_FFFF_FFFF_FFFF
_PAIR = struct.Struct("<QQ" if sys.byteorder == "little" else ">QQ")


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of ``data`` with the 128-bit key ``(k0, k1)``: Rust's ``DefaultHasher`` algorithm."""
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    length = len(data)
    whole = length - length % 8
    for offset in range(0, whole, 8):
        word = int.from_bytes(data[offset:offset + 8], "little")
        v3 ^= word
        sip_round()
        v0 ^= word
    last = (length & 0xFF) << 56
    for index, byte in enumerate(data[whole:]):
        last |= byte << (8 * index)
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    sip_round()
    sip_round()
    sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def _sip_pair(first: int, second: int) -> int:
    """:func:`siphash13` of two little-endian u64 words with zero keys, inlined (the guard's hot path:
    ~3x faster than the general loop, and checked against it in the tests).  Steps 0-2 compress the
    words and the length block (16 bytes); steps 3-5 are the finalisation rounds."""
    m = _MASK
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    for step, word in enumerate((first, second, 16 << 56, 0, 0, 0)):
        if step < 3:
            v3 ^= word
        elif step == 3:
            v2 ^= 0xFF
        v0 = (v0 + v1) & m
        v1 = ((v1 << 13) | (v1 >> 51)) & m ^ v0
        v0 = ((v0 << 32) | (v0 >> 32)) & m
        v2 = (v2 + v3) & m
        v3 = ((v3 << 16) | (v3 >> 48)) & m ^ v2
        v0 = (v0 + v3) & m
        v3 = ((v3 << 21) | (v3 >> 43)) & m ^ v0
        v2 = (v2 + v1) & m
        v1 = ((v1 << 17) | (v1 >> 47)) & m ^ v2
        v2 = ((v2 << 32) | (v2 >> 32)) & m
        if step < 3:
            v0 ^= word
    return v0 ^ v1 ^ v2 ^ v3


@memoized("inode hashes")
def _inode(dev: int, ino: int) -> int:
    if sys.byteorder == "little":
        return _sip_pair(dev & _MASK, ino & _MASK)
    return siphash13(_PAIR.pack(dev & _MASK, ino & _MASK))


def wasi_inode(stat: os.stat_result) -> int:
    """The ``ino`` a WASI guest sees for the host object ``stat`` describes."""
    return _inode(stat.st_dev, stat.st_ino)
