"""A fault as a person debugging wants it: every frame named, the guest's source around the line.

- a frame wasmtime could only number (``<wasm function 7>``) is named by the module's exports
  (:mod:`wasm_facts`), as the name section would have;
- the innermost frame in the guest's own source (``trap.c:4:11``, a Python ``line 2``) brings the
  lines around it (``Fault.source``), which the notebook view shows;
- a Python guest that ends with an uncaught exception has its own traceback as the fault
  (kind ``exception``): what the guest reported on stderr, parsed.  It is the guest's report (a
  guest could print any text), so it changes nothing the sandbox decided: the run's outcome is
  still its exit code.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .result import Fault
from .wasm_facts import facts_of

__all__ = ["explain_fault", "python_fault", "source_around"]

_NUMBERED = re.compile(r"^<wasm function (\d+)>")
_PY_FRAME = re.compile(r'^  File "<string>", line (\d+)(?:, in (.+))?$')
_PY_ERROR = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
#: source lines shown on each side of the failing line
CONTEXT = 2


def source_around(text: str, line: int, context: int = CONTEXT) -> tuple[tuple[int, str], ...]:
    """``(number, text)`` of the lines around ``line`` (1-based) of ``text``."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return ()
    first, last = max(1, line - context), min(len(lines), line + context)
    return tuple((n, lines[n - 1]) for n in range(first, last + 1))


def explain_fault(fault: Fault | None, program: Any, exit_code: int | None, stderr: str) -> Fault | None:
    """The run's fault with its frames named and its source lines; for a Python guest that failed
    with a traceback and did not trap, that traceback."""
    if fault is None:
        if program.lang == "python" and exit_code not in (None, 0):
            return python_fault(stderr, program.source_text)
        return None
    frames = fault.backtrace
    if any(_NUMBERED.match(f) for f in frames):
        names = facts_of(program.wasm()).function_names
        frames = tuple(_NUMBERED.sub(lambda m: names.get(int(m.group(1)), m.group(0)), f) for f in frames)
    source: tuple[tuple[int, str], ...] = ()
    line = 0
    if program.source_text and program.source_name:
        name = re.escape(program.source_name) + (r"(?:\.c)?" if program.lang == "c" else "")
        where = re.compile(rf"\({name}:(\d+)(?::\d+)?\)")
        for frame in frames:
            found = where.search(frame)
            if found:
                line = int(found.group(1))
                source = source_around(program.source_text, line)
                break
    return dataclasses.replace(fault, backtrace=frames, source=source, line=line)


def python_fault(stderr: str, source_text: str) -> Fault | None:
    """The last uncaught exception a Python guest printed, as a :class:`Fault`, or None."""
    lines = stderr.splitlines()
    frames: list[tuple[int, str]] = []
    message = ""
    for index, text in enumerate(lines):
        if text == "Traceback (most recent call last):":
            frames, message = [], ""
            continue
        frame = _PY_FRAME.match(text)
        if frame:
            frames.append((int(frame.group(1)), frame.group(2) or "<module>"))
    if not frames:
        return None
    for text in reversed(lines):
        error = _PY_ERROR.match(text)
        if error and not text.startswith(" "):
            message = text
            break
    if not message:
        return None
    line = frames[-1][0]
    backtrace = tuple(f"{name} (line {number})" for number, name in reversed(frames))
    return Fault(kind="exception", message=message, backtrace=backtrace, source=source_around(source_text, line),
                 line=line, trapped=False)
