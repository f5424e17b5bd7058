"""Reading wasmtime's trap text: the guest's backtrace, without native frames."""

from __future__ import annotations

import re

from .guard_wasm import HELPER_NAMES

__all__ = ["backtrace_of"]

_FRAME = re.compile(r"^\s*\d+:\s+(?:0x[0-9a-f]+ - )?(?:<unknown>!)?(?P<name>.+?)\s*$")
_INLINED = re.compile(r"^\s+- (?P<name>.+?)\s*$")  # a function inlined into the frame above (DWARF)
_LOCATION = re.compile(r"^\s*at (?P<where>\S+)\s*$")
MAX_FRAMES = 20
#: frames of the sandbox's own helper modules (the guard between the guest and WASI): not the guest's
_HELPERS = tuple(f"{name}!" for name in HELPER_NAMES)


def backtrace_of(text: str) -> tuple[str, ...]:
    """Frames of the ``wasm backtrace:`` section, innermost first: ``name (file.c:12:5)`` when
    the module carries debug info (a function inlined into another is a frame of its own, as in the
    source), ``name`` when it has a name section, ``<wasm function N>`` else.  Frames of the guard's
    helper modules (``workbench_guard!...``) are the sandbox's, not the guest's: left out.
    Long (recursive) traces are cut to ``MAX_FRAMES`` with a count of the rest."""
    if "wasm backtrace:" not in text:
        return ()
    section = text.split("wasm backtrace:", 1)[1].split("Caused by:", 1)[0]
    frames: list[str] = []
    for line in section.splitlines():
        location = _LOCATION.match(line)
        if location and frames:
            where = location.group("where")
            frames[-1] = f"{frames[-1]} ({where.rsplit('/', 1)[-1]})"
            continue
        frame = _FRAME.match(line) or (_INLINED.match(line) if frames else None)
        if frame and not frame.group("name").startswith(_HELPERS):
            frames.append(frame.group("name"))
    if len(frames) > MAX_FRAMES:
        frames = frames[:MAX_FRAMES] + [f"... {len(frames) - MAX_FRAMES} more frames"]
    return tuple(frames)
