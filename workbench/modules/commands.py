"""``workbench modules list | show NAME | run NAME``: the catalog from the terminal.

``run`` grants the module only what ``--cap`` gives (the terminal is its caller): a module that
asks for more is refused with exit code 2.  Its payload is ``--input key=value`` pairs (values
are JSON when they parse, text otherwise) or ``--payload JSON``.  Exit codes as ``workbench run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import SandboxError

__all__ = ["register", "parse_inputs"]

#: the exit codes of ``workbench run`` (cli.py, which imports this module)
EXIT_OK, EXIT_GUEST_FAILED, EXIT_VIOLATION, EXIT_FAULT = 0, 1, 3, 4


def register(subcommands: Any) -> None:
    listing = subcommands.add_parser("list", help="the catalog's modules (extensions/ and WORKBENCH_EXTENSIONS)")
    listing.set_defaults(handler=_cmd_list)
    show = subcommands.add_parser("show", help="one module's manifest: capabilities, exports, inputs, outputs")
    show.add_argument("name")
    show.set_defaults(handler=_cmd_show)
    run = subcommands.add_parser(
        "run", help="run a catalog module under the granted capabilities",
        epilog="example: workbench modules run parser --cap filesystem:read:/data --input path=/data/a.csv",
    )
    run.add_argument("name")
    run.add_argument("--cap", action="append", default=[], metavar="CAP", help="grant a capability (repeatable)")
    run.add_argument("--input", action="append", default=[], metavar="KEY=VALUE",
                     help="one input (repeatable); the value is JSON when it parses, else text")
    run.add_argument("--payload", metavar="JSON", help="the whole payload as JSON (instead of --input)")
    run.add_argument("--root", default=".", help="host folder that the guest's / maps to (default: .)")
    run.add_argument("--json", action="store_true", help="print the RunResult as JSON")
    run.set_defaults(handler=_cmd_run)


def parse_inputs(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}`` (our error for a pair without ``=``)."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SandboxError(f"--input {pair!r} is not KEY=VALUE", hint="write --input text='a b c'")
        try:
            inputs[key] = json.loads(value)
        except ValueError:
            inputs[key] = value
    return inputs


def _cmd_list(options: argparse.Namespace) -> int:
    from . import default_catalog

    for manifest in default_catalog().manifests():
        caps = ", ".join(manifest.capabilities) or "no capabilities"
        print(f"{manifest.name:<12} {manifest.language:<7} {manifest.description}  [{caps}]")
    return 0


def _cmd_show(options: argparse.Namespace) -> int:
    from . import default_catalog

    print(default_catalog().get(options.name).describe())
    return 0


def _cmd_run(options: argparse.Namespace) -> int:
    from ..runtime import Sandbox

    if options.payload is not None:
        if options.input:
            raise SandboxError("--payload and --input were both given", hint="use one of them")
        try:
            payload: Any = json.loads(options.payload)
        except ValueError as exc:
            raise SandboxError(f"--payload is not JSON: {exc}", hint="quote it: --payload '{\"text\": \"a\"}'") from None
    else:
        payload = parse_inputs(options.input)
    result = Sandbox(options.cap, root=options.root).run_module(options.name, payload)
    if options.json:
        print(result.to_json(indent=2))
    else:
        value = result.value if result.value is not None else result.stdout
        print(json.dumps(value, indent=2) if not isinstance(value, str) else value)
        if result.calls:
            print(result.call_tree(), file=sys.stderr)
        if not result.ok:
            for line in repr(result).splitlines():
                print(f"workbench: {line}", file=sys.stderr)
    if result.violations:
        return EXIT_VIOLATION
    if result.fault is not None:
        return EXIT_FAULT
    return EXIT_OK if result.exit_code == 0 else EXIT_GUEST_FAILED
