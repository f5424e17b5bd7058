"""Recognise what a source is, so ``lang=None`` does the obvious thing.

Rules, strongest first:

1. a path's suffix (``.wasm``, ``.wat``/``.wast``, ``.c``/``.h``, ``.py``);
2. the wasm magic bytes ``\\0asm``;
3. text whose first token (after WAT comments) is ``(module`` or ``(component``: WAT;
4. text that Python's own parser accepts: Python (C never parses as Python: ``;``
   after a declaration, braces, ``int main(``);
5. otherwise C markers (``#include``, ``main(``, ``;`` at line ends, braces) decide
   between C and Python-with-a-syntax-error.

Where the choice rests on weak evidence (rule 5 with few markers, or text with no
code at all) a :class:`LanguageGuessWarning` says which language was chosen and
how to choose another (``lang=...``).  When nothing fits, the error lists the
``lang=`` values that exist.
"""

from __future__ import annotations

import ast
import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import ModuleError, WorkbenchWarning, warn_at_caller

__all__ = ["GuestSource", "Detection", "LanguageGuessWarning", "detect_language", "guess_language",
           "load_module_source", "SourceLike"]

SourceLike = Union[str, bytes, bytearray, memoryview, os.PathLike]

WASM_MAGIC = b"\0asm"
SUFFIXES = {".wasm": "wasm", ".wat": "wat", ".wast": "wat", ".c": "c", ".h": "c", ".py": "python"}
_WAT_COMMENTS = re.compile(r"\A(?:\s+|;;[^\n]*\n?|\(;.*?;\))*", re.S)
_FILE_NAME = re.compile(r"\A[\w./~-]+\.(?:py|c|h|wat|wast|wasm)\Z")
_C_MARKERS = {
    "#include": re.compile(r"^\s*#\s*include\s*[<\"]", re.M),
    "a main function": re.compile(r"\b(?:int|void)\s+main\s*\("),
    "#define": re.compile(r"^\s*#\s*(?:define|ifdef|ifndef|pragma)\b", re.M),
    "statements ending in ';'": re.compile(r";\s*(?://.*)?$", re.M),
    "braces": re.compile(r"[{}]\s*$", re.M),
    "C declarations": re.compile(r"^\s*(?:static\s+|const\s+|unsigned\s+)*(?:int|char|float|double|long|void|size_t|struct\s+\w+)\s*\*?\s*\w+\s*[=;(\[]", re.M),
}
_STRONG_C = ("#include", "a main function")


class LanguageGuessWarning(WorkbenchWarning):
    """``lang=None`` chose a language on weak evidence; the message says how to override it."""


@dataclass(frozen=True)
class Detection:
    """A detected language, whether the evidence is strong, and why."""

    lang: str | None
    confident: bool
    reason: str


@dataclass(frozen=True)
class GuestSource:
    """A source ready to compile: its language, content and a display name."""

    lang: str
    content: Union[str, bytes]
    name: str
    path: Path | None = None
    detected: bool = False
    note: str | None = None


def _looks_like_wat(text: str) -> bool:
    rest = text[_WAT_COMMENTS.match(text).end():]  # type: ignore[union-attr]
    return rest.startswith("(module") or rest.startswith("(component")


def _has_code(text: str) -> bool:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "//", "/*", "*")):
            return True
    return False


def guess_language(content: Union[str, bytes]) -> Detection:
    """The language of ``content`` with how sure the guess is (see the module docstring)."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        if data[:4] == WASM_MAGIC:
            return Detection("wasm", True, "starts with the wasm magic bytes")
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            return Detection(None, False, "binary data that is not a wasm module")
    text = content.lstrip("\ufeff")
    if _looks_like_wat(text):
        return Detection("wat", True, "starts with (module")
    markers = [label for label, pattern in _C_MARKERS.items() if pattern.search(text)]
    strong_c = [label for label in markers if label in _STRONG_C]
    if not _has_code(text):
        return Detection("python", False, "there is no code in it, only comments or blank lines")
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        parses = False
    else:
        parses = True
    if parses:
        return Detection("python", True, "Python's parser accepts it")
    if strong_c or len(markers) >= 3:
        return Detection("c", True, f"it has {', '.join(markers)}")
    if markers:
        return Detection("c", False, f"it is not valid Python and has {', '.join(markers)}")
    return Detection("python", False, "it looks like Python with a syntax error (no C markers)")


def detect_language(content: Union[str, bytes]) -> str | None:
    """The detected language of ``content``, or ``None`` when nothing fits."""
    return guess_language(content).lang


def _path_hint(text: str) -> None:
    """A one-line str that names an existing source file was almost surely meant as a path."""
    candidate = text.strip()
    if "\n" not in candidate and _FILE_NAME.match(candidate) and os.path.isfile(os.path.expanduser(candidate)):
        raise ModuleError(
            f"the source {candidate!r} is a file name, and a str is always taken as source text",
            hint=f"to run the file pass a path: pathlib.Path({candidate!r})",
        )


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
        if lang is None:
            _path_hint(source)
    else:
        raise TypeError(f"source must be str, bytes or a path, not {type(source).__name__}")

    detected = False
    note = None
    if lang is None:
        guess = guess_language(content)
        detected = True
        if guess.lang is None:
            raise ModuleError(
                f"cannot tell what language this module is in ({guess.reason})",
                hint=f"pass lang= one of {', '.join(sorted(known_languages()))}",
            )
        lang = guess.lang
        if not guess.confident:
            others = [other for other in ("python", "c", "wat") if other != lang]
            note = (f"guessed lang={lang!r} because {guess.reason}; "
                    f"pass lang={others[0]!r} (or {others[1]!r}) to run it as something else")
            warn_at_caller(note, LanguageGuessWarning)
    if lang not in known_languages():
        close = difflib.get_close_matches(lang, known_languages(), n=1)
        raise ModuleError(
            f"unknown language {lang!r}" + (f" — did you mean {close[0]!r}?" if close else ""),
            hint=f"known languages: {', '.join(sorted(known_languages()))}",
        )
    if lang in ("wat", "python", "c") and isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            kind = "WAT source" if lang == "wat" else f"{lang.capitalize() if lang != 'c' else 'C'} source"
            raise ModuleError(f"{kind} is not valid UTF-8 text",
                              hint="for a binary module use lang='wasm'; save sources as UTF-8") from exc
    return GuestSource(lang=lang, content=content, name=name or "module", path=path, detected=detected, note=note)
