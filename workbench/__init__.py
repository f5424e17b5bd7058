"""Sandbox Workbench: run untrusted WebAssembly under capabilities and watch what it does.

The public face (design.md §2)::

    from workbench import Sandbox, Policy, AuditLog
"""

from __future__ import annotations

from . import probes
from .errors import (
    AuditError,
    CapabilityError,
    CompileError,
    EscalationError,
    LinkError,
    ModuleError,
    PolicyError,
    SandboxError,
    SandboxViolation,
)
from .events import Event, EventBus, Sample, Violation
from .policy import Capability, Limits, Policy
from .runtime import DEFAULT_LIMITS, CompileCache, Fault, Mount, RunResult, Sandbox, Usage
from . import modules  # noqa: E402,F401 - registers module calls with the runtime (runtime.device_plan.CALLS)

__all__ = [
    "Sandbox",
    "Policy",
    "Capability",
    "Limits",
    "DEFAULT_LIMITS",
    "RunResult",
    "Usage",
    "Fault",
    "Mount",
    "CompileCache",
    "Event",
    "EventBus",
    "Sample",
    "Violation",
    "AuditLog",
    "probes",
    "SandboxError",
    "CapabilityError",
    "EscalationError",
    "PolicyError",
    "ModuleError",
    "CompileError",
    "LinkError",
    "SandboxViolation",
    "AuditError",
]


def __getattr__(name: str) -> object:
    # the audit package pulls in pandas only when a frame is asked for, but keep the import lazy anyway
    if name == "AuditLog":
        from .audit import AuditLog

        return AuditLog
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext workbench``: register the notebook magics (IPython is imported only now)."""
    from .jupyter import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """``%unload_ext workbench``: remove the magics again."""
    from .jupyter import unload_ipython_extension as unload

    unload(ipython)
