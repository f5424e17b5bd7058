"""Small helpers of the magics (:mod:`.magics`): help text, close-match hints, argv splitting.

Kept apart so the magics module stays a thin layer: parse the line, call the library, present the result.
"""

from __future__ import annotations

import difflib
from typing import Any

from IPython.core.error import UsageError

from ..errors import SandboxError

__all__ = ["plain_help", "close_match", "audit_log_class", "split_argv", "kernel_present"]


def plain_help(prefix: str) -> Any:
    """IPython's ``magic_arguments`` writes help as reStructuredText: ``::`` then the usage,
    indented.  A person reading ``%%sandbox?`` sees that ``::`` first; start with ``usage:``
    (and the magic's real prefix) instead."""

    def fix(func: Any) -> Any:
        doc = func.__doc__ or ""
        if doc.startswith("::\n\n"):
            lines = doc[len("::\n\n"):].split("\n")
            usage: list[str] = []
            while lines and lines[0].strip():
                usage.append(lines.pop(0)[2:])
            usage[0] = "usage: " + prefix + usage[0].lstrip().lstrip("%")
            usage[1:] = ["       " + line[1:] if line.startswith(" ") else line for line in usage[1:]]
            func.__doc__ = "\n".join(usage + lines)
        return func

    return fix


def close_match(word: str, choices: list[str]) -> str:
    found = difflib.get_close_matches(word, choices, n=1)
    return f" — did you mean {found[0]!r}?" if found else ""


def audit_log_class() -> Any:
    """``workbench.audit.AuditLog``, imported only when an audit log is asked for."""
    try:
        from ..audit import AuditLog
    except ImportError as exc:
        raise SandboxError(
            "the audit log is not available in this installation", hint="run without --audit"
        ) from exc
    return AuditLog


def split_argv(line: str) -> tuple[list[str], list[str]]:
    """Options before ``--``, module arguments after it."""
    from IPython.utils.process import arg_split

    try:
        argv = arg_split(line, posix=True, strict=True)
    except ValueError as exc:
        raise UsageError(f"cannot split the options: {exc}") from None
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


def kernel_present(shell: Any) -> bool:
    """Widgets can render only behind a kernel (not in terminal IPython)."""
    from .widgets import widgets_available

    return getattr(shell, "kernel", None) is not None and widgets_available()
