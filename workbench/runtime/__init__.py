"""The wasmtime side: engines, compile cache, WASI set-up, deadlines and :class:`Sandbox`."""

from __future__ import annotations

from . import shutdown  # noqa: F401  (a clean exit: see shutdown.py)
from .cache import CompileCache, default_cache_dir
from .mounts import Mount
from .plan import LimitRule, OnViolation, RunPlan
from .result import Fault, RunResult, Usage
from .sandbox import DEFAULT_LIMITS, Sandbox

__all__ = [
    "Sandbox",
    "RunResult",
    "Usage",
    "Fault",
    "Mount",
    "CompileCache",
    "default_cache_dir",
    "DEFAULT_LIMITS",
    "RunPlan",
    "LimitRule",
    "OnViolation",
]
