"""A trap wasmtime's WASI raised on a guest's argument value, told in the sandbox's words.

Why: wasmtime's WASI (wiggle) converts each argument from its wasm integer to its WASI type
and, on a value outside that type, traps rather than returning an errno: ``Invalid flag value
Fdflags``, ``Invalid enum value Clockid``, ``number too small to fit in target type`` (a
negative i32/i64 where WASI has an unsigned type), ``Pointer out of bounds`` (a buffer outside
the guest's memory).  Only a malformed or hostile module passes such values (a libc never does),
so the run still ends with its fault (kind ``trap``), but its message names the call and what was
wrong, and a hint says what to do.  wasmtime's own text stays in :attr:`Fault.detail`.
The calls the guard checks refuse undefined flag bits with EINVAL before wasmtime sees them
(``guard_abi.FLAG_WORDS``); these are the rest (decisions.md, "Odd argument values").
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["WasiArgumentTrap", "wasi_argument_trap"]

_IN_FUNC = re.compile(r"In func wasi_snapshot_preview1::(?P<call>\w+) at (?P<where>[^:]+):")
_CONVERT = re.compile(r"^convert (?P<type>\w+)$")
_VALUE = re.compile(
    r"Invalid (?:flag|enum) value (?P<type>\w+)|number too (?:small|large) to fit in target type"
    r"|Int conversion error|Invalid enum value|Invalid flag value"
)
_POINTER = re.compile(r"Pointer out of bounds|Region \{ start: \d+, len: \d+ \}")


class WasiArgumentTrap(NamedTuple):
    """What a trap on a WASI argument means: our message, a hint, the call (if wasmtime named it)."""

    message: str
    hint: str
    call: str | None


def wasi_argument_trap(text: str, cause: str) -> WasiArgumentTrap | None:
    """Our account of wasmtime's trap ``text`` (innermost cause ``cause``), or None when it is not
    a WASI call's argument that trapped."""
    place = _IN_FUNC.search(text)
    call = place.group("call") if place else None
    named = f"{call}'s argument" if call else "a WASI call's argument"
    if _VALUE.search(cause) or (place and _CONVERT.match(place.group("where").strip())):
        converted = _CONVERT.match(place.group("where").strip()) if place else None
        found = _VALUE.search(cause)
        kind = converted.group("type") if converted else (found.group("type") if found and found.group("type") else None)
        of = f"the WASI type {kind} of {named}" if kind else f"the WASI type of {named}"
        return WasiArgumentTrap(
            f"the guest passed a value outside {of} ({cause}): a malformed or hostile module",
            "WASI defines only some values and bits for that argument, and wasmtime stops the run on any other; "
            "a C or Rust program compiled for wasm32-wasi never passes one, so check the module's imports "
            "(a wrong signature) or the values it builds by hand",
            call,
        )
    if _POINTER.search(cause):
        to = f"{call}" if call else "a WASI call"
        return WasiArgumentTrap(
            f"the guest passed {to} a buffer outside its memory ({cause}): a malformed or hostile module",
            "every pointer and length a WASI call is given must lie inside the module's linear memory; "
            "check the addresses the module passes (an unset pointer, a length read from the wrong place)",
            call,
        )
    return None
