"""Guest languages: turn what the user gave (text, bytes or a path) into a :class:`Program`.

- ``wat``, ``wasm``: a module run as it is (:mod:`.wat`, :mod:`.wasm`);
- ``c``: compiled with zig's clang to wasm32-wasi, with debug info (:mod:`.c`);
- ``python``: the user's code run by CPython for WASI (:mod:`.python`, :mod:`.pyruntime`),
  started from a pre-initialised interpreter when it can be (:mod:`.pysnapshot`).

:func:`load_module_source` resolves paths and detects the language
(:mod:`.detect`); :func:`prepare_program` hands the runtime a :class:`Program`.
Errors are :class:`~workbench.errors.CompileError` with the line when known.
"""

from __future__ import annotations

from .detect import Detection, GuestSource, LanguageGuessWarning, detect_language, guess_language, load_module_source
from .program import Entry, Needs, Program, SystemMount
from .progress import set_progress_hook
from .registry import compile_to_wasm, known_languages, prepare_program

__all__ = ["GuestSource", "Detection", "LanguageGuessWarning", "detect_language", "guess_language",
           "load_module_source", "compile_to_wasm", "known_languages", "prepare_program", "Program",
           "SystemMount", "Entry", "Needs", "set_progress_hook"]
