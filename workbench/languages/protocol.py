"""A language's side channel in stdout, kept inside its :class:`~.program.Program`.

The Python driver hands ``result`` back as one line of stdout that starts with a
marker (two ASCII record separators and ``workbench-result:``).  That line is
protocol, not output: no view may show it.  So the filter lives with the language,
and the runtime runs every stream a view sees through it: ``on_output`` as the
guest writes (the CLI, the notebook's live stream, any caller's callback) and the
``RunResult.stdout`` after the run.  Both use this one class, so what was streamed
and what the result holds are the same bytes.

Semantics (chosen so that no split of the stream into chunks changes the result):

- a protocol line runs from a marker to the next ``\\n`` (included); it may start in
  the middle of a line (the guest's last print may lack its newline);
- bytes at the end of a chunk that could begin a marker are held back until the next
  chunk (or :meth:`LineProtocol.finish`) shows what they are; the marker starts with
  ``\\x1e``, so ordinary text is never delayed;
- a protocol line that never ends (cut by the output cap, or the guest died while
  writing it) is still protocol: it is hidden, and offered as the last payload;
- the payload is what follows the line's *last* marker, so a guest that printed a
  marker itself cannot glue its text onto the driver's line.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

__all__ = ["OutputFilter", "LineProtocol", "Chain", "filtered_output"]


class OutputFilter(Protocol):
    """What :attr:`Program.stdout_filter` makes, one per run."""

    def feed(self, data: bytes) -> bytes:
        """The part of ``data`` that is the guest's own output (possibly empty)."""

    def finish(self) -> bytes:
        """The end of the stream: whatever was held back and is not protocol."""


class LineProtocol:
    """Removes ``marker ... \\n`` lines from a byte stream fed chunk by chunk; keeps their payloads."""

    def __init__(self, marker: bytes, *, keep: int = 0) -> None:
        if not marker or b"\n" in marker:
            raise ValueError("a protocol marker is non-empty and has no newline")
        self.marker = marker
        self.payloads = 0  #: protocol lines seen
        self.last: bytes | None = None  #: the payload of the last protocol line
        #: the payloads of the first ``keep`` protocol lines (figures: several per run), in order
        self.kept: list[bytes] = []
        self._keep = keep
        self._held = b""
        self._line: bytearray | None = None  # inside a protocol line: its bytes so far

    def feed(self, data: bytes) -> bytes:
        buffer = self._held + data
        self._held = b""
        out: list[bytes] = []
        while buffer:
            if self._line is not None:
                end = buffer.find(b"\n")
                if end < 0:
                    self._line += buffer
                    break
                self._line += buffer[:end]
                self._close_line()
                buffer = buffer[end + 1:]
                continue
            at = buffer.find(self.marker)
            if at >= 0:
                out.append(buffer[:at])
                self._line = bytearray()
                buffer = buffer[at + len(self.marker):]
                continue
            keep = self._partial_marker(buffer)
            out.append(buffer[: len(buffer) - keep])
            self._held = buffer[len(buffer) - keep:]
            break
        return b"".join(out)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        if self._line is not None:
            self._close_line()
        return held

    def _close_line(self) -> None:
        line = bytes(self._line or b"")
        self._line = None
        last = line.rfind(self.marker)
        self.payloads += 1
        self.last = line[last + len(self.marker):] if last >= 0 else line
        if len(self.kept) < self._keep:
            self.kept.append(self.last)

    def _partial_marker(self, buffer: bytes) -> int:
        """How many bytes at the end of ``buffer`` are a proper prefix of the marker."""
        for size in range(min(len(self.marker) - 1, len(buffer)), 0, -1):
            if self.marker.startswith(buffer[-size:]):
                return size
        return 0


class Chain:
    """Two filters in a row: what the first lets through is fed to the second (two side channels)."""

    def __init__(self, first: OutputFilter, second: OutputFilter) -> None:
        self.first, self.second = first, second

    def feed(self, data: bytes) -> bytes:
        return self.second.feed(self.first.feed(data))

    def finish(self) -> bytes:
        return self.second.feed(self.first.finish()) + self.second.finish()


def filtered_output(
    on_output: Callable[[str, bytes], None] | None, make_filter: Callable[[], OutputFilter] | None
) -> tuple[Callable[[str, bytes], None] | None, Callable[[], None]]:
    """``on_output`` seeing stdout through a fresh filter, and the function that ends the stream.

    Call the second after the guest has stopped writing: it passes on what the filter
    held back.  Without a callback or a filter, ``on_output`` is returned unchanged.
    """
    if on_output is None or make_filter is None:
        return on_output, lambda: None
    stdout_filter = make_filter()
    lock = threading.Lock()  # wasmtime may write from a worker thread; the filter has state
    callback = on_output

    def write(stream: str, data: bytes) -> None:
        if stream == "stdout":
            with lock:
                data = stdout_filter.feed(data)
            if not data:
                return
        callback(stream, data)

    def finish() -> None:
        with lock:
            tail = stdout_filter.finish()
        if tail:
            callback("stdout", tail)

    return write, finish
