"""The ``workbench modules test-*`` subcommands (registered on the CLI's ``modules`` group).

Why lazy imports: ``workbench --help`` must not load wasmtime; each suite is
imported when its command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subcommands: Any) -> None:
    """Add ``test-limits``, ``test-capabilities`` and ``test-violations`` to ``subcommands``
    (the ``modules`` group's ``add_subparsers()`` object)."""
    limits = subcommands.add_parser(
        "test-limits",
        help="measure each resource limit against its tolerance",
        description="Run bundled probes against memory, CPU share, CPU time, deadline, fuel, output, "
        "stack and table limits; print expected vs measured; exit 1 if any row is outside its tolerance.",
    )
    limits.add_argument(
        "--seconds", type=_positive, default=1.5, metavar="S",
        help="length of the CPU-share runs (default 1.5; the issue's gate uses 3)",
    )
    limits.set_defaults(handler=_cmd_limits)
    capabilities = subcommands.add_parser(
        "test-capabilities",
        help="check each capability is allowed or denied as it should be",
        description="Run filesystem, symlink, /tmp and environment probes in a throw-away workspace; "
        "exit 1 if any right was wrongly allowed or denied.",
    )
    capabilities.set_defaults(handler=_cmd_capabilities)
    violations = subcommands.add_parser(
        "test-violations",
        help="check each violation is caught and classified",
        description="Run probes that break one rule each (memory, time, CPU, fuel, output, stack, tables, "
        "filesystem) or trap (faults); exit 1 if any run ended some other way.",
    )
    violations.set_defaults(handler=_cmd_violations)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (e.g. 1.5)") from None
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of seconds between 0 and 60")
    return value


def _cmd_limits(options: argparse.Namespace) -> int:
    from .limits import run_limits

    report = run_limits(seconds=options.seconds)
    report.print(sys.stdout)
    return report.exit_code


def _cmd_capabilities(options: argparse.Namespace) -> int:
    from .capabilities import run_capabilities

    report = run_capabilities()
    report.print(sys.stdout)
    return report.exit_code


def _cmd_violations(options: argparse.Namespace) -> int:
    from .violations import run_violations

    report = run_violations()
    report.print(sys.stdout)
    return report.exit_code
