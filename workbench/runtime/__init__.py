"""The wasmtime side: engines, compile cache, WASI set-up, deadlines and :class:`Sandbox`.

Also how a finished run is told (views import these, never the modules behind them):
:class:`Outcome` (how it ended), :class:`Timeline` (its violations grouped by lane),
:class:`Reading`\\ s (usage against limits), and its text and HTML renderings.
"""

from __future__ import annotations

from . import shutdown  # noqa: F401  (a clean exit: see shutdown.py)
from .cache import CompileCache, default_cache_dir
from .mounts import Mount
from .outcome import Outcome
from .readings import Reading, level_for, readings
from .render import mount_line, result_html, result_limits, result_text, usage_readings
from .plan import LimitRule, OnViolation, RunPlan
from .result import Fault, RunResult, Usage
from .sandbox import DEFAULT_LIMITS, Sandbox
from .sizes import human_size
from .timeline import LANES, Timeline, TimelineGroup

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
    # how a finished run is told (the views import these)
    "Outcome",
    "Timeline",
    "TimelineGroup",
    "LANES",
    "Reading",
    "readings",
    "level_for",
    "usage_readings",
    "result_text",
    "result_html",
    "result_limits",
    "mount_line",
    "human_size",
]
