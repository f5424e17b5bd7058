"""Compiling an installation's interpreter ahead, exactly as its first run would.

Why at install time: the first compile of the scientific interpreter takes about a minute and
2.3 GB of memory; done by ``workbench runtimes install``, with progress, the first notebook
cell or CLI run starts in well under a second.  The artifact goes to the installation's own
``compiled/`` folder (a :class:`~workbench.runtime.CompileCache` with the compile cache's rules),
keyed by the same engine settings a run uses (:mod:`workbench.runtime.needs`), so the run finds it.
A run with a fuel budget uses another engine (fuel changes the code) and compiles its own the
first time (docs/decisions.md).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from ..languages.progress import set_progress_hook
from ..languages.scipython import interpreter_program
from ..runtime.engine import engine_for
from ..runtime.needs import cache_for, engine_settings
from ..runtime.sandbox import DEFAULT_LIMITS, compile_program, extra_imports, shared_cache
from .store import Installed

__all__ = ["compile_installed"]


@contextlib.contextmanager
def _quiet(label: str, expected: float) -> Iterator[None]:
    yield


def compile_installed(installed: Installed, progress: bool = True) -> float:
    """Compile (or find compiled) ``installed``'s interpreter for a default run; the seconds it took."""
    program = interpreter_program(installed)
    handle = engine_for(engine_settings(program, DEFAULT_LIMITS, stack_from_policy=False))
    started = time.monotonic()
    previous = None if progress else set_progress_hook(_quiet)
    try:
        compile_program(program, handle, cache_for(program, shared_cache()), extra_imports(program, handle))
    finally:
        if previous is not None:
            set_progress_hook(previous)
    return time.monotonic() - started
