"""Recognise what a source is, so ``lang=None`` does the obvious thing.

Rules, strongest first: a path's suffix; the wasm magic bytes ``\\0asm``; text
whose first token (after WAT comments) is ``(module`` or ``(component``.  When
nothing fits, the error says which ``lang=`` values exist.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import ModuleError

__all__ = ["GuestSource", "detect_language", "load_module_source", "SourceLike"]

SourceLike = Union[str, bytes, bytearray, memoryview, os.PathLike]

WASM_MAGIC = b"\0asm"
SUFFIXES = {".wasm": "wasm", ".wat": "wat", ".wast": "wat"}
_WAT_COMMENTS = re.compile(r"\A(?:\s+|;;[^\n]*\n?|\(;.*?;\))*", re.S)


@dataclass(frozen=True)
class GuestSource:
    """A source ready to compile: its language, content and a display name."""

    lang: str
    content: Union[str, bytes]
    name: str
    path: Path | None = None
    detected: bool = False


def _looks_like_wat(text: str) -> bool:
    rest = text[_WAT_COMMENTS.match(text).end():]  # type: ignore[union-attr]
    return rest.startswith("(module") or rest.startswith("(component")


def detect_language(content: Union[str, bytes]) -> str | None:
    """``"wasm"`` or ``"wat"`` for content that is clearly one of them, else ``None``."""
    if isinstance(content, (bytes, bytearray)):
        if bytes(content[:4]) == WASM_MAGIC:
            return "wasm"
        try:
            content = bytes(content).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return "wat" if _looks_like_wat(content) else None


def load_module_source(source: SourceLike, lang: str | None = None, *, name: str | None = None) -> GuestSource:
    """Resolve ``source`` (text, bytes or a path) and its language.

    A ``pathlib.Path`` (or any ``os.PathLike``) is read from disk; a plain string
    is treated as source text, never as a file name, so that a module's text is
    never confused with a path.
    """
    from .registry import known_languages

    path: Path | None = None
    if isinstance(source, os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ModuleError(f"module file not found: {path}", hint="check the path, or pass the source text itself")
        content: Union[str, bytes] = path.read_bytes()
        if lang is None:
            lang = SUFFIXES.get(path.suffix.lower())
        name = name or path.stem
    elif isinstance(source, (bytes, bytearray, memoryview)):
        content = bytes(source)
    elif isinstance(source, str):
        content = source
    else:
        raise TypeError(f"source must be str, bytes or a path, not {type(source).__name__}")

    detected = False
    if lang is None:
        lang = detect_language(content)
        detected = True
        if lang is None:
            raise ModuleError(
                "cannot tell what language this module is in (not wasm bytes, not WAT text)",
                hint=f"pass lang= one of {', '.join(sorted(known_languages()))}",
            )
    if lang not in known_languages():
        close = difflib.get_close_matches(lang, known_languages(), n=1)
        raise ModuleError(
            f"unknown language {lang!r}" + (f" — did you mean {close[0]!r}?" if close else ""),
            hint=f"known languages: {', '.join(sorted(known_languages()))}",
        )
    if lang == "wat" and isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModuleError("WAT source is not valid UTF-8 text", hint="for a binary module use lang='wasm'") from exc
    return GuestSource(lang=lang, content=content, name=name or "module", path=path, detected=detected)
