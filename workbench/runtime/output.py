"""Capturing a guest's stdout and stderr under one shared byte cap.

The cap sits in the WASI stream itself (``stdout_custom``/``stderr_custom``), so
it covers every way a guest can write to fds 1 and 2: ``fd_write``, a renumbered
or duplicated descriptor, libc buffering, anything.  Bytes up to the cap are
kept; the write that crosses it is cut short, later writes fail with ``EFBIG``
(a guest's libc reports "File too large"), and the first cut is reported once.
"""

from __future__ import annotations

import errno
import threading
import weakref
from typing import Callable

__all__ = ["OutputCapture", "weakly"]


class OutputCapture:
    """stdout/stderr buffers with a shared cap.

    ``on_cap(stream, attempted)`` is called once when the cap is first hit;
    ``on_write(stream, data)`` (optional) streams accepted bytes to a live view as
    they arrive.  Both run on the thread wasmtime's WASI writes from, which is a
    native worker thread, not the guest's: keep them quick and thread-safe.
    """

    def __init__(
        self,
        cap: int | None,
        on_cap: Callable[[str, int], None],
        on_write: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.cap = cap
        self._on_cap = on_cap
        self._on_write = on_write
        self._chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.kept = 0
        self.dropped = 0
        self.capped = False
        self._lock = threading.Lock()

    def writer(self, stream: str) -> Callable[[bytes], int]:
        """The callback wasmtime calls for ``stream``; returns bytes accepted or ``-errno``."""
        chunks = self._chunks[stream]

        def write(data: bytes) -> int:
            with self._lock:
                room = len(data) if self.cap is None else max(self.cap - self.kept, 0)
                accepted = data if room >= len(data) else data[:room]
                if accepted:
                    chunks.append(accepted)
                    self.kept += len(accepted)
                cut = len(data) - len(accepted)
                first_cut = cut > 0 and not self.capped
                if cut:
                    self.dropped += cut
                    self.capped = True
            if accepted and self._on_write is not None:
                try:
                    self._on_write(stream, accepted)
                except Exception:
                    pass
            if first_cut:
                self._on_cap(stream, len(data))
            if not accepted and cut:
                return -errno.EFBIG
            return len(accepted)

        return write

    def text(self, stream: str) -> str:
        return self.data(stream).decode("utf-8", errors="replace")

    def data(self, stream: str) -> bytes:
        return b"".join(self._chunks[stream])


def weakly(method: Callable[[str, int], None]) -> Callable[[str, int], None]:
    """``method`` holding its object only weakly: once the object is gone, calls do nothing."""
    ref = weakref.WeakMethod(method)

    def call(stream: str, attempted: int) -> None:
        bound = ref()
        if bound is not None:
            bound(stream, attempted)

    return call
