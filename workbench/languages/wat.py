"""WAT (the WebAssembly text format) to wasm, with errors that give line and column."""

from __future__ import annotations

import re
from typing import Union

import wasmtime

from ..errors import CompileError
from .messages import clean_wasmtime_message

__all__ = ["compile"]

_LOCATION = re.compile(r"-->\s*<anon>:(\d+):(\d+)")


def compile(source: Union[str, bytes]) -> bytes:
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    try:
        return bytes(wasmtime.wat2wasm(source))
    except wasmtime.WasmtimeError as exc:
        text = clean_wasmtime_message(str(exc))
        where = _LOCATION.search(text)
        line = int(where.group(1)) if where else None
        column = int(where.group(2)) if where else None
        first = text.strip().splitlines()[0] if text.strip() else "invalid WAT"
        at = f" at line {line}, column {column}" if line else ""
        snippet = ""
        if line:
            lines = source.splitlines()
            if 0 < line <= len(lines):
                snippet = f"\n    {lines[line - 1]}\n    {' ' * max((column or 1) - 1, 0)}^"
        raise CompileError(f"invalid WAT{at}: {first}{snippet}", line=line, column=column) from exc
