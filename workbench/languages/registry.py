"""Which adapters exist and how to call them.

Two kinds: languages that compile to a module run as it is (WAT, wasm, C), and
Python, whose Program is the shared interpreter plus the user's code in its argv.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from ..caches import memoized
from ..errors import ModuleError
from . import c, wasm, wat
from .program import Program

__all__ = ["compile_to_wasm", "known_languages", "prepare_program"]

_ADAPTERS: dict[str, Callable[[Union[str, bytes], str], bytes]] = {
    "wat": lambda content, name: wat.compile(content),
    "wasm": lambda content, name: wasm.compile(content),
    "c": c.compile,
}
_INTERPRETED = ("python",)


def known_languages() -> list[str]:
    return [*_ADAPTERS, *_INTERPRETED]


@memoized("compiled sources")
def compile_to_wasm(lang: str, content: Union[str, bytes], name: str = "module") -> bytes:
    """Compile ``content`` of language ``lang`` to the bytes of a core wasm module.

    Memoised (32 sources): a notebook or a batch runs the same source again and again,
    and the per-run path of a sandbox is hot.  Errors are not cached.
    """
    if lang not in _ADAPTERS:
        raise ModuleError(f"{lang!r} does not compile to a single module", hint="use prepare_program")
    return _ADAPTERS[lang](content, name)


def prepare_program(
    lang: str,
    content: Union[str, bytes],
    name: str,
    *,
    path: Path | None = None,
    inputs: Mapping[str, Any] | None = None,
    runtime: str | None = None,
) -> Program:
    """The :class:`Program` for a source: compiled (memoised) and wrapped for the runtime.

    ``inputs`` (Python only) are checked here, before anything runs: a value JSON
    cannot carry is a :class:`ModuleError` naming where it is.  ``runtime`` (Python only): an
    installed interpreter to use instead of the default one (``"scientific"``, :mod:`.scipython`).
    """
    if runtime is not None and runtime != "default":
        if lang != "python":
            raise ModuleError(f"runtime={runtime!r} is for lang='python' only, not {lang!r}",
                              hint="leave runtime= out for other languages")
        from . import python, scipython

        # not memoised: whether the runtime is installed (and intact) is asked on every run
        return _with_source(scipython.prepare(content, name, path=path, inputs_json=python.encode_inputs(inputs),
                                              runtime=runtime), content, name, path)
    if lang == "python":
        from . import python
        from .pyruntime import current_settings

        return _python_memo(content, name, path, python.encode_inputs(inputs), current_settings())
    if inputs is not None:
        raise ModuleError(f"inputs= is supported for lang='python' only, not {lang!r}",
                          hint="pass data to other modules with stdin=, args= or a granted file")
    return _prepare_memo(lang, content, name, path)


def _with_source(program: Program, content: Union[str, bytes], name: str, path: Path | None) -> Program:
    """``program`` naming the guest's own code (an interpreter's module hash is the same for every
    script); worked out inside the memos, so a source run again is not hashed again."""
    source = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else bytes(content)
    return dataclasses.replace(program, source_sha256=hashlib.sha256(source).hexdigest(),
                               source_name=path.name if path is not None else name,
                               source_text=content if isinstance(content, str) else "")


@memoized("prepared programs")
def _prepare_memo(lang: str, content: Union[str, bytes], name: str, path: Path | None = None) -> Program:
    wasm = compile_to_wasm(lang, content, name)
    if lang == "c":  # the stack pointer, readable by the host (a memory snapshot shows it); the guest is unchanged
        wasm = c.export_stack_pointer(wasm)
    program = Program.from_wasm(lang, name, wasm)
    if lang == "c" and c.DEFAULT_OPTIONS.debug:
        program = dataclasses.replace(program, debug_info=True)
    return _with_source(program, content, name, path)


@memoized("python programs")
def _python_memo(content: Union[str, bytes], name: str, path: Path | None, inputs_json: str, settings: Any) -> Program:
    from . import python

    return _with_source(python.prepare(content, name, path=path, inputs_json=inputs_json), content, name, path)
