"""Which adapters exist and how to call them."""

from __future__ import annotations

import functools
from typing import Callable, Union

from . import wasm, wat
from .program import Program

__all__ = ["compile_to_wasm", "known_languages", "prepare_program"]

_ADAPTERS: dict[str, Callable[[Union[str, bytes]], bytes]] = {
    "wat": wat.compile,
    "wasm": wasm.compile,
}


def known_languages() -> list[str]:
    return list(_ADAPTERS)


@functools.lru_cache(maxsize=32)
def compile_to_wasm(lang: str, content: Union[str, bytes]) -> bytes:
    """Compile ``content`` of language ``lang`` to the bytes of a core wasm module.

    Memoised (32 sources): a notebook or a batch runs the same source again and again,
    and the per-run path of a sandbox is hot.  Errors are not cached.
    """
    return _ADAPTERS[lang](content)


def prepare_program(lang: str, content: Union[str, bytes], name: str) -> Program:
    """The :class:`Program` for a source: compiled (memoised) and wrapped for the runtime."""
    return _prepare_memo(lang, content, name)


@functools.lru_cache(maxsize=32)
def _prepare_memo(lang: str, content: Union[str, bytes], name: str) -> Program:
    return Program.from_wasm(lang, name, compile_to_wasm(lang, content))
