"""Binary wasm: checked for the magic number here, validated when compiled."""

from __future__ import annotations

from typing import Union

from ..errors import CompileError

__all__ = ["compile"]


def compile(source: Union[str, bytes]) -> bytes:
    if isinstance(source, str):
        raise CompileError("a binary wasm module must be bytes, not text", hint="for text use lang='wat'")
    if source[:4] != b"\0asm":
        raise CompileError(
            f"not a WebAssembly module: the first bytes are {source[:4]!r}, expected b'\\x00asm'",
            hint="pass a .wasm file, or lang='wat' for text",
        )
    return bytes(source)
