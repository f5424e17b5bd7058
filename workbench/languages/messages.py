"""Turning wasmtime's error text into ours: no native backtraces, no noise."""

from __future__ import annotations

import re

from ..errors import CompileError

__all__ = ["clean_wasmtime_message", "root_cause", "source_text"]

_NATIVE_BACKTRACE = re.compile(r"\n\s*(Stack backtrace:|stack backtrace:).*", re.S)


def clean_wasmtime_message(text: str) -> str:
    """Drop any Rust backtrace (``RUST_BACKTRACE=1``) and trailing blank lines."""
    return _NATIVE_BACKTRACE.sub("", text).rstrip()


def root_cause(text: str) -> str:
    """The innermost cause of an anyhow-style chain (``Caused by:`` list), one line."""
    text = clean_wasmtime_message(text)
    if "Caused by:" in text:
        tail = text.split("Caused by:", 1)[1]
        causes = [re.sub(r"^\s*\d+:\s*", "", line).strip() for line in tail.strip().splitlines()]
        causes = [c for c in causes if c]
        if causes:
            return causes[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text


def source_text(content: str | bytes, language: str) -> str:
    """Source as text: bytes must be UTF-8, and the error says where they are not."""
    if isinstance(content, str):
        return content
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CompileError(f"{language} source is not valid UTF-8 (byte {exc.start})", hint="save the file as UTF-8") from exc
