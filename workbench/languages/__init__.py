"""Guest languages: turn what the user gave (text, bytes or a path) into wasm bytes.

Each adapter has one job: ``compile(source) -> bytes`` of a core wasm module, or
a :class:`~workbench.errors.CompileError` that names the line and column.
:func:`load_module_source` resolves paths and detects the language.
"""

from __future__ import annotations

from .detect import GuestSource, detect_language, load_module_source
from .program import Program, SystemMount
from .registry import compile_to_wasm, known_languages, prepare_program

__all__ = ["GuestSource", "detect_language", "load_module_source", "compile_to_wasm", "known_languages",
           "prepare_program", "Program", "SystemMount"]
