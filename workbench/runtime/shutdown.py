"""A clean exit: no wasmtime thread may call into Python once the interpreter is finalizing.

The mechanism behind the old abort at exit (docs/decisions.md, "A clean exit"): a
thread that is not the finalizing one and calls into a finalizing CPython (any ctypes
callback: ``PyGILState_Ensure``) is ended with ``pthread_exit``; when the callback was
made from Rust, the forced unwind meets a frame that cannot unwind and the process
aborts (SIGABRT, "panic in a function that cannot unwind").  A callback whose ctypes
thunk was already freed by module teardown is a jump into freed memory (SIGSEGV).

So the workbench keeps three rules, and this module holds the two that need a place:

1. No callback is ever left for wasmtime to make on its own threads: WASI output
   streams have no finalizer (:mod:`.wasi_streams`), and every store is freed by the
   run that made it, on the run's thread, before the run returns.
2. Guests stop before the interpreter finalizes: a run registers with :func:`running`;
   at exit, new runs are refused, runs still going in other (daemon) threads are asked
   to stop, and the exit waits (boundedly) until they have left wasmtime.
3. The ctypes thunks wasmtime holds are immortal (:func:`keep_forever`), so a late call
   can never land in freed memory.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Protocol

from ..errors import SandboxError
from .wasi_streams import keep_forever

__all__ = ["running", "keep_forever", "stop_runs_at_exit", "active_runs", "EXIT_WAIT_SECONDS"]

#: the longest an exiting process waits for guests in other threads to stop
EXIT_WAIT_SECONDS = 5.0

class _Stoppable(Protocol):
    def stop(self, kind: str, reason: str) -> None: ...


_lock = threading.Lock()
_left = threading.Condition(_lock)
_active: dict[int, tuple[threading.Thread, _Stoppable]] = {}
_exiting = False
_counter = 0


class running:
    """The span of one run in wasmtime (store made to store freed); refused once the process exits.

    (A class rather than a generator: it is on every run's path.)
    """

    __slots__ = ("_watch", "_key")

    def __init__(self, watch: _Stoppable) -> None:
        self._watch = watch
        self._key = 0

    def __enter__(self) -> None:
        global _counter
        with _lock:
            if _exiting:
                raise SandboxError(
                    "the Python process is exiting: no new sandbox run can start",
                    hint="finish runs before the interpreter shuts down (join the threads that start them)",
                )
            _counter += 1
            self._key = _counter
            _active[self._key] = (threading.current_thread(), self._watch)

    def __exit__(self, *exc: object) -> None:
        with _lock:
            del _active[self._key]
            if _exiting:  # only the exit waits for runs to leave
                _left.notify_all()


def active_runs() -> int:
    """Runs in progress in this process (all threads)."""
    return len(_active)


def stop_runs_at_exit(timeout: float = EXIT_WAIT_SECONDS) -> bool:
    """Refuse new runs, stop those in other threads, wait until they are out; True when none is left."""
    global _exiting
    me = threading.current_thread()
    with _lock:
        _exiting = True
        others = [(thread, watch) for thread, watch in _active.values() if thread is not me]
    for _, watch in others:
        watch.stop("cancel", "the Python process is exiting")
    deadline = time.monotonic() + timeout
    with _lock:
        while any(thread is not me and thread.is_alive() for thread, _ in _active.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _left.wait(left)
    return True


atexit.register(stop_runs_at_exit)
