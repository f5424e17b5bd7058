"""A clean exit: let wasmtime's worker threads finish calling into Python first.

wasmtime's WASI writes a guest's stdout/stderr, and releases the Python callbacks
behind them, on its own (tokio) worker threads, a few milliseconds after a store is
freed.  If the interpreter is already finalizing when such a thread calls in,
CPython ends that thread with ``pthread_exit``, which cannot unwind through Rust:
the process prints a native panic ("panic in a function that cannot unwind") on
its way out.  So at exit we wait, briefly and boundedly, until wasmtime-py's table
of output callbacks is empty.
"""

from __future__ import annotations

import atexit
import time

__all__ = ["wait_for_wasi_threads", "EXIT_WAIT_SECONDS"]

#: the longest an exiting process waits for wasmtime's threads to let go
EXIT_WAIT_SECONDS = 1.0


def wait_for_wasi_threads(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Wait until no WASI output callback is outstanding; True when none is."""
    try:
        from wasmtime._wasi import CUSTOM_OUTPUTS
    except ImportError:  # pragma: no cover - another wasmtime-py layout
        return True
    deadline = time.monotonic() + timeout
    while CUSTOM_OUTPUTS.handles:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


atexit.register(wait_for_wasi_threads)
