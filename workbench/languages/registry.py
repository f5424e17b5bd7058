"""Which adapters exist and how to call them."""

from __future__ import annotations

from typing import Callable, Union

from . import wasm, wat

__all__ = ["compile_to_wasm", "known_languages"]

_ADAPTERS: dict[str, Callable[[Union[str, bytes]], bytes]] = {
    "wat": wat.compile,
    "wasm": wasm.compile,
}


def known_languages() -> list[str]:
    return list(_ADAPTERS)


def compile_to_wasm(lang: str, content: Union[str, bytes]) -> bytes:
    """Compile ``content`` of language ``lang`` to the bytes of a core wasm module."""
    return _ADAPTERS[lang](content)
