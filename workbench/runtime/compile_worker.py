"""The compile helper process (``python -m workbench.runtime.compile_worker``); see :mod:`.compiler`.

It reads requests on stdin (settings as JSON, then the wasm bytes), compiles each
with an engine built from the same :class:`EngineSettings` as the host's, and writes
``Module.serialize()`` (or wasmtime's error) back on its own copy of stdout.  It ends
at the end of its input.  It never runs a module, so no guest code ever runs here.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import BinaryIO

import wasmtime

from .compiler import _READY, _REPLY, _REQUEST
from .engine import EngineSettings


def _read(stream: BinaryIO, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def main() -> None:
    # Ctrl-C in a terminal, or a Jupyter kernel interrupt, signals the whole process group:
    # the host decides what an interrupt stops (it kills this helper if it was waiting on it)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else prints cannot corrupt the replies
    requests = sys.stdin.buffer
    engines: dict[EngineSettings, wasmtime.Engine] = {}
    replies.write(_READY)  # the host's compile time limit starts now, not at our own start-up
    replies.flush()
    while True:
        header = _read(requests, _REQUEST.size)
        if header is None:
            return
        settings_size, wasm_size = _REQUEST.unpack(header)
        settings_json, wasm = _read(requests, settings_size), _read(requests, wasm_size)
        if settings_json is None or wasm is None:
            return
        settings = EngineSettings(**json.loads(settings_json))
        engine = engines.get(settings)
        if engine is None:
            engine = engines[settings] = wasmtime.Engine(settings.build_config())
        payload: bytes | bytearray
        try:
            status, payload = 0, wasmtime.Module(engine, wasm).serialize()
        except wasmtime.WasmtimeError as exc:
            status, payload = 1, str(exc).encode("utf-8", "replace")
        replies.write(_REPLY.pack(status, len(payload)))
        replies.write(payload)
        replies.flush()


if __name__ == "__main__":
    main()
