"""Forwarding a guest's stdout/stderr into the cell, as it prints.

``Sandbox.run(on_output=...)`` calls back on whatever thread wasmtime's WASI
writes from: the guest's, or (as measured with wasmtime-py 50) a native
worker thread that Python did not create.  Writing to ``sys.stdout`` from such
a thread sends the text to whichever cell ran last, and ipykernel 7 routes
thread output by context (ipywidgets issues 4001 and 4020).  So the callback
only appends to a buffer, and :meth:`StreamForwarder.drain` writes it out:

- during the run, from the refresh thread, which the cell starts inside a copy
  of its own ``contextvars`` context (so ipykernel attributes the text to this
  cell's request, explicitly) and joins before the cell ends: nothing it
  writes can land in another cell;
- after the run, from the cell's own thread (:meth:`finish`).

It also keeps the notebook usable when a guest floods: past ``max_bytes`` in
total the rest is not shown (it is still in ``result.stdout``), and one note
says so.  Bytes are decoded incrementally, so a UTF-8 character split across
two writes is not mangled.
"""

from __future__ import annotations

import codecs
import sys
import threading
from typing import TextIO

__all__ = ["StreamForwarder"]


class StreamForwarder:
    """``on_output(stream, data)`` for :meth:`Sandbox.run`, writing into the current cell."""

    def __init__(self, max_bytes: int | None = 200_000) -> None:
        self.max_bytes = max_bytes
        self.shown = 0
        self.hidden = 0
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in ("stdout", "stderr")}
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, stream: str, data: bytes) -> None:
        with self._lock:
            room = len(data) if self.max_bytes is None else max(self.max_bytes - self.shown, 0)
            part = data[:room]
            self.hidden += len(data) - len(part)
            self.shown += len(part)
            # a Python guest's result hand-back line never arrives here: the run filters its
            # language's protocol out of every stream (workbench.languages.protocol)
            text = self._decoders.get(stream, self._decoders["stdout"]).decode(part) if part else ""
            if text:
                self._pending.append((stream, text))

    def drain(self) -> None:
        """Write what the guest printed so far (refresh thread, or the cell's thread)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for stream, text in pending:
            self._write(stream, text)

    def finish(self) -> None:
        """On the cell's thread after the run: the rest, the decoders' tails, the note."""
        with self._lock:
            for name, decoder in self._decoders.items():
                tail = decoder.decode(b"", final=True)
                if tail:
                    self._pending.append((name, tail))
        self.drain()
        if self.hidden:
            self._write(
                "stderr",
                f"\n[workbench: {self.hidden:,} more bytes of output not shown here; "
                "they are in result.stdout / result.stderr (-o VAR keeps the result)]\n",
            )

    @staticmethod
    def _write(stream: str, text: str) -> None:
        target: TextIO = sys.stderr if stream == "stderr" else sys.stdout
        target.write(text)
