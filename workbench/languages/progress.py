"""Progress for the one slow step a user can wait on: compiling a large module the first time.

wasmtime compiles in one blocking call with no progress callback, so progress is
an estimate: expected seconds from the module's size, a bar that fills with time
and jumps to the end when the compile returns.  The display is a hook:

- in a terminal (stderr is a TTY): a tqdm bar;
- elsewhere: one line on stderr saying what is happening and that it happens once;
- a notebook replaces it with a widget: ``set_progress_hook(my_hook)``.

A hook is ``hook(label, expected_seconds) -> ContextManager``; the compile runs
inside the ``with``.  Hooks must never raise: a broken display must not break a run.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Callable, ContextManager, Iterator

__all__ = ["ProgressHook", "set_progress_hook", "get_progress_hook", "compile_progress", "step_progress",
           "terminal_progress"]

ProgressHook = Callable[[str, float], ContextManager[None]]

#: seconds per megabyte of wasm for a cranelift compile on this class of machine (2 cores):
#: the 26 MB CPython build takes about 4-9 s
SECONDS_PER_MB = 0.3


@contextlib.contextmanager
def terminal_progress(label: str, expected_seconds: float) -> Iterator[None]:
    """A tqdm bar on a TTY, else a single explanatory line on stderr."""
    stream = sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        stream.write(f"workbench: {label} (about {expected_seconds:.0f} s, once; later runs use the compile cache)\n")
        stream.flush()
        yield
        return
    from tqdm import tqdm

    done = threading.Event()
    total = max(expected_seconds, 0.5)
    with tqdm(total=round(total, 1), desc=label, unit="s", leave=False, file=stream,
              bar_format="{desc}: {bar} {elapsed} (est. {total:.0f} s)") as bar:

        def tick() -> None:
            start = time.monotonic()
            while not done.wait(0.1):
                bar.n = round(min(time.monotonic() - start, total * 0.97), 1)
                bar.refresh()

        ticker = threading.Thread(target=tick, name="workbench-compile-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            bar.n = bar.total
            bar.refresh()


_hook: ProgressHook = terminal_progress


def set_progress_hook(hook: ProgressHook | None) -> ProgressHook:
    """Install ``hook`` for later compiles (None restores the terminal default); returns the old one."""
    global _hook
    old = _hook
    _hook = hook if hook is not None else terminal_progress
    return old


def get_progress_hook() -> ProgressHook:
    return _hook


def compile_progress(label: str, size_bytes: int) -> ContextManager[None]:
    """Show progress around a compile of ``size_bytes`` of wasm, with whatever hook is installed."""
    return step_progress(label, max(1.0, size_bytes / 1e6 * SECONDS_PER_MB))


@contextlib.contextmanager
def step_progress(label: str, expected: float) -> Iterator[None]:
    """Show progress around any slow step expected to take ``expected`` seconds (a C compile)."""
    try:
        display = _hook(label, expected)
        display.__enter__()
    except Exception:
        display = None
    try:
        yield
    finally:
        if display is not None:
            try:
                display.__exit__(None, None, None)
            except Exception:
                pass
