"""What a language adapter hands the runtime: a :class:`Program`.

Most languages compile to a module that is run as it is (WAT, wasm, C).  An
interpreter (Python) is one big module shared by every run, plus what it needs
to start: arguments before the user's, read-only system folders (its standard
library), environment variables, and a way to read a result back.  The runtime
treats all of these alike, under the same policy, limits and events.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping

from .protocol import OutputFilter

__all__ = ["Program", "SystemMount", "Entry", "Needs"]


@dataclass(frozen=True)
class SystemMount:
    """A read-only folder the language runtime itself needs (never the user's data)."""

    guest_path: str
    host_path: str
    purpose: str


@dataclass(frozen=True)
class Needs:
    """What an interpreter installed apart (``runtime="scientific"``) asks of the engine and the run,
    beyond a plain WASI command module.  None of it widens what the guest may do:

    - ``entry``: the export that runs the program (a reactor's ``run``, not ``_start``);
    - ``wasm_stack``: its wasm stack in bytes when the policy sets none (``stack:limit`` still wins);
      a run whose thread cannot hold it runs on a thread of its own with a native stack that can;
    - ``exceptions``: the wasm exception-handling proposal, on an engine of its own;
    - ``host_call``: it imports ``host::call`` (i32×4 → i32), which is answered by a stub that
      refuses (-1) and records each call (docs/decisions.md, "The scientific runtime");
    - ``cache_dir``: where its compiled form is kept (its installation, so removing it frees the disk);
    - ``max_code_bytes``: its code section, larger than the compile bounds allow a guest's module
      (it is pinned by sha256, so its size is known and fixed).
    """

    entry: str = "_start"
    wasm_stack: int | None = None
    exceptions: bool = False
    host_call: bool = False
    cache_dir: str | None = None
    max_code_bytes: int | None = None


@dataclass(frozen=True)
class Entry:
    """What a :attr:`Program.enter` hook receives: the run's fresh instance and how it was set up.

    - ``store``/``exports``: the new instance (never used before, never used again);
    - ``module``/``engine``: the compiled module and its engine (to build helpers on);
    - ``preopens``: guest paths in preopen order (fd 3, 4, ...); ``env``: the guest's
      environment as ``(name, value)`` pairs, exactly as the run's WASI config has them.
    """

    store: Any
    exports: Any
    module: Any
    engine: Any
    preopens: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Program:
    """A module ready to compile and run.

    - ``wasm`` returns the module's bytes (called only when the compile cache misses,
      so a large interpreter is not read on every run); ``sha256`` identifies them;
    - ``argv`` is the guest's whole argv before the user's ``args`` (``argv[0]`` first);
    - ``system_mounts``, ``env`` and ``stdin`` are added by the language, not the user;
    - ``read_value`` turns the run's stdout into ``RunResult.value`` (and strips the
      protocol lines from it): ``(stdout) -> (stdout_for_user, value)``;
    - ``stdout_filter`` makes, per run, the filter that strips the same protocol lines
      from stdout as it streams (``on_output``), so no view ever shows them;
    - ``enter`` (optional) replaces the plain ``_start`` call: it gets an :class:`Entry` and
      returns the exit code (or raises like ``_start``).  The Python fast path uses it to
      start a fresh instance from a pre-initialised interpreter;
    - ``compiling`` (optional) is entered around the compile-cache lookup, so a module that
      must really be compiled (seconds) can show progress;
    - ``debug_info``: the module carries DWARF worth reading (C built with ``-g``), so the
      engine should turn wasm backtraces into ``file.c:line``;
    - ``source_sha256`` and ``source_name`` identify the guest's own code (its source text, or the
      module's bytes), which ``sha256`` does not for an interpreter: every Python run has the
      interpreter's hash.  The run's start record carries them, so audit trails can tell two
      Python runs with different code apart;
    - ``housekeeping``: guest paths the language runtime itself looks for, never the user's code
      (an interpreter's own source files, to quote them in a traceback; a trailing ``/`` marks a
      prefix).  The guard answers them "not found" and records them apart from the guest's own
      requests, unless the policy grants them.
    """

    lang: str
    name: str
    sha256: str
    wasm: Callable[[], bytes]
    argv: tuple[str, ...] = ()
    system_mounts: tuple[SystemMount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    read_value: Callable[[bytes], tuple[bytes, Any]] | None = None
    stdout_filter: Callable[[], OutputFilter] | None = None
    enter: Callable[[Entry], int] | None = None
    compiling: Callable[[], ContextManager[None]] | None = None
    debug_info: bool = False
    housekeeping: tuple[str, ...] = ()
    source_sha256: str = ""
    source_name: str = ""
    source_text: str = ""  # the guest's source, when it is text (a fault shows the lines around its line)
    #: what an interpreter installed apart needs of the engine and the run (:class:`Needs`); None: nothing
    needs: Needs | None = None
    #: ``(stdout) -> (stdout without them, figure payloads)``: figures handed back through stdout (the
    #: runtime checks and caps them: ``runtime/figures.py``); None for languages without figures
    read_figures: Callable[[bytes], tuple[bytes, tuple[bytes, ...]]] | None = None

    @classmethod
    def from_wasm(cls, lang: str, name: str, wasm: bytes) -> "Program":
        """A plain module: run as it is, ``argv[0]`` is its name."""
        return cls(lang=lang, name=name, sha256=hashlib.sha256(wasm).hexdigest(), wasm=lambda: wasm, argv=(name,))
