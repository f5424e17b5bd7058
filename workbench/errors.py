"""Every way a sandbox run can fail, rooted at one :class:`SandboxError`.

The tree, so a reader sees every failure mode at once::

    SandboxError                         anything this package raises on purpose
    ├── CapabilityError (ValueError)     a capability string that does not parse
    │   └── EscalationError (PermissionError)
    │                                    a child asked for more than its caller holds
    ├── PolicyError (ValueError)         a policy that parses but cannot be applied
    │                                    (a granted folder that does not exist, ...)
    ├── ModuleError (ValueError)         the guest module itself is unusable
    │   ├── CompileError                 invalid WAT, bytes that are not wasm, a C/Python
    │   │                                compile failure; carries line/column when known
    │   ├── LinkError                    the module imports something not granted
    │   ├── ManifestError                a catalog module's manifest.toml that cannot be
    │   │                                used; carries its file and field
    │   └── RuntimeMissingError          a run asked for a guest runtime (``runtime=
    │                                    "scientific"``) that is not installed, or damaged
    ├── InstallError                     a guest runtime that cannot be installed or removed
    │   │                                (``workbench runtimes``): a failed download, a
    │   │                                checksum mismatch, too little memory or disk
    │   └── UnknownRuntimeError (ValueError)
    │                                    a runtime name that is not in the catalog
    ├── BatchError (ValueError)          a batch that cannot be run as given (two jobs with
    │                                    one id, a job without a source, ...)
    ├── SandboxViolation (PermissionError)
    │                                    raised only on request (strict mode): a run ended
    │                                    in a violation; the RunResult is attached
    └── AuditError                       an audit log that cannot be written (the run
        │                                refuses: fail closed), or read as asked
        └── AuditKeyError (ValueError)   a missing, short or wrong audit key, signing key
                                         or checkpoint

Errors that come from wasmtime keep the original exception as ``__cause__``, but
their message is ours: it names what went wrong and how to fix it, and never
carries a native (Rust) backtrace.

Why subclass builtins: callers that know nothing of this package can still catch
``ValueError`` for bad input or ``PermissionError`` for a denial.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

__all__ = [
    "SandboxError",
    "CapabilityError",
    "EscalationError",
    "PolicyError",
    "ModuleError",
    "CompileError",
    "LinkError",
    "ManifestError",
    "RuntimeMissingError",
    "InstallError",
    "UnknownRuntimeError",
    "SandboxViolation",
    "BatchError",
    "MemoryAccessError",
    "InstanceError",
    "AuditError",
    "AuditKeyError",
    "WorkbenchWarning",
    "SuggestionWarning",
    "UnenforcedCapabilityWarning",
    "SubscriberWarning",
]


class SandboxError(Exception):
    """Root of every error this package raises on purpose.

    ``hint`` (optional) says how to fix it; ``str()`` includes it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")

    def _render_traceback_(self) -> list[str]:
        """Render short in IPython: one message, no stack (the full trace is one
        ``%xmode Verbose`` away through ``__cause__``)."""
        return [f"{type(self).__name__}: {self}"]


class CapabilityError(SandboxError, ValueError):
    """A capability string that does not follow the grammar.

    ``text`` is the whole capability, ``part`` the piece that is wrong and
    ``suggestion`` the nearest valid word, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str | None = None,
        part: str | None = None,
        suggestion: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.text = text
        self.part = part
        self.suggestion = suggestion
        super().__init__(message, hint=hint)


class EscalationError(CapabilityError, PermissionError):
    """A called module asked for a right its caller does not hold."""


class PolicyError(SandboxError, ValueError):
    """A policy that parses but cannot be applied here (e.g. a missing folder)."""


class ModuleError(SandboxError, ValueError):
    """The guest module cannot be used."""


class CompileError(ModuleError):
    """The source does not compile. ``line``/``column`` are 1-based when known."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.line = line
        self.column = column
        super().__init__(message, hint=hint)


class LinkError(ModuleError):
    """The module imports a function or memory the sandbox does not provide."""

    def __init__(self, message: str, *, imports: list[str] | None = None, hint: str | None = None) -> None:
        self.imports = imports or []
        super().__init__(message, hint=hint)


class ManifestError(ModuleError):
    """A catalog module's ``manifest.toml`` is missing, malformed or names something wrong.
    ``file`` is the manifest's path, ``field`` the key at fault (None for the whole file)."""

    def __init__(self, message: str, *, file: str, field: str | None = None, hint: str | None = None) -> None:
        self.file = file
        self.field = field
        where = f"{file}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}", hint=hint)


class RuntimeMissingError(ModuleError):
    """A run asked for a guest runtime that is not installed here (or whose files changed since
    it was installed).  ``runtime`` is its name; the hint gives the command that installs it."""

    def __init__(self, message: str, *, runtime: str, hint: str | None = None) -> None:
        self.runtime = runtime
        super().__init__(message, hint=hint)


class InstallError(SandboxError):
    """A guest runtime could not be installed, checked or removed.  Nothing half-installed is
    left behind: the install works in a temporary folder that is renamed into place last."""


class UnknownRuntimeError(InstallError, ValueError):
    """A runtime name that the catalog (``workbench runtimes list``) does not know."""


class BatchError(SandboxError, ValueError):
    """A batch (``workbench.batch.run_many``) that cannot be run as given: raised before any job
    runs.  What a guest does in a job is never a ``BatchError``: it is that job's result."""


class MemoryAccessError(SandboxError, IndexError):
    """An address or length outside a memory snapshot (negative, past its end, not an integer)."""


class InstanceError(SandboxError):
    """A live instance was used wrongly: closed, used from a second thread during a call, out of
    budget, or called with an unknown export or arguments that do not fit its signature."""


class SandboxViolation(SandboxError, PermissionError):
    """Raised in strict mode when a run ends with violations; ``result`` is the RunResult."""

    def __init__(self, message: str, *, result: Any = None, hint: str | None = None) -> None:
        self.result = result
        super().__init__(message, hint=hint)


class AuditError(SandboxError):
    """The audit log cannot be written (a folder that cannot be made, a file that cannot be
    opened for writing), or it cannot be continued or checked as asked (a keyed log without
    its key).  Raised before anything runs: a sandbox never runs unaudited when asked to audit."""


class AuditKeyError(AuditError, ValueError):
    """An audit key, signing key, public key or checkpoint that is missing, malformed, too
    short, or does not belong to the log."""


class WorkbenchWarning(UserWarning):
    """Base of this package's warnings: something the user should know, nothing failed."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the first line outside this package: the user's own call.

    A fixed ``stacklevel`` names whichever internal line happens to be that many frames up
    (``…/workbench/runtime/sandbox.py:170: prepared = self._prepare(...)``), which tells a
    user nothing and shows them our source; walking out of the package names their line.
    """
    frame = sys._getframe(1)
    level = 2  # warnings.warn's stacklevel for warn_at_caller's caller
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


class UnenforcedCapabilityWarning(WorkbenchWarning):
    """A granted capability that this runtime cannot give a guest yet (``network:``,
    ``module:call:``): the grammar, attenuation and audit know them, but a WASI preview 1
    guest has no sockets and no way to call another module, so the grant has no effect.
    Deny by default still holds; the warning only says the grant will not be usable."""


class SubscriberWarning(WorkbenchWarning):
    """A view subscriber (a widget, a callback passed to ``Sandbox.subscribe``) raised while
    a run delivered events to it.  The run went on; the failures are in
    ``RunResult.subscriber_failures``.  (A *critical* subscriber, such as the audit log,
    stops the run instead: see ``RunResult.audit_failure``.)"""


class SuggestionWarning(WorkbenchWarning):
    """Learn mode's suggested policy left out paths the capability grammar cannot name exactly
    (a guest-chosen name holding glob characters, ``;`` or spaces); they are listed."""
