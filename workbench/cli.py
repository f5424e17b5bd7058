"""``workbench``: the terminal view of the sandbox.

Exit codes of ``workbench run`` (documented in the README):
0 the module ran cleanly · 1 it exited with a non-zero code · 2 bad input (a
capability, a module, a path, an audit log that cannot be written) · 3 a violation ·
4 a fault (trap) · 5 the audit log failed during the run, which stopped it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .errors import SandboxError, WorkbenchWarning

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_GUEST_FAILED, EXIT_BAD_INPUT, EXIT_VIOLATION, EXIT_FAULT, EXIT_AUDIT_FAILED = 0, 1, 2, 3, 4, 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Run untrusted WebAssembly under capabilities and watch what it does.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run one module",
        description="Run one module (WAT or wasm) in the sandbox, deny-by-default.",
        epilog="example: workbench run probe.wat --cap filesystem:read:/docs --cap time:limit:2s",
    )
    run.add_argument("file", type=Path, help="the module: a .wat or .wasm file")
    run.add_argument("--cap", action="append", default=[], metavar="CAP", help="grant a capability (repeatable)")
    run.add_argument("--lang", help="source language (default: from the file)")
    run.add_argument("--runtime", metavar="NAME",
                     help="Python only: an installed runtime (scientific: numpy, pandas, matplotlib; "
                          "see workbench runtimes)")
    run.add_argument("--root", default=".", help="host folder that the guest's / maps to (default: .)")
    run.add_argument("--entry", default="_start", help="exported function to call (default: _start)")
    run.add_argument("--on-violation", choices=["deny", "kill", "audit"], default="deny",
                     help="deny: refuse and go on (default); kill: stop at the first violation; "
                          "audit: learn mode, allow and record everything, then print the suggested policy")
    run.add_argument("--audit", metavar="FILE", help="append every event to this audit log (JSON Lines, hash-chained)")
    key = run.add_mutually_exclusive_group()
    key.add_argument("--audit-key-file", metavar="KEYFILE",
                     help="keyed audit log: HMAC-SHA256 key from this file (workbench audit keygen hmac KEYFILE)")
    key.add_argument("--audit-key-env", metavar="VAR", nargs="?", const="WORKBENCH_AUDIT_KEY",
                     help="keyed audit log: the key from this environment variable (default WORKBENCH_AUDIT_KEY)")
    run.add_argument("--json", action="store_true", help="print the RunResult as JSON instead of the guest's output")
    run.add_argument("--trace", action="store_true", help="record every WASI call and print the trace (stderr)")
    run.add_argument("args", nargs="*", help="arguments for the module; put them after -- (workbench run m.wat -- -v x)")
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser("demo", help="run the bundled escape attempts and show what the sandbox decided")
    demo.set_defaults(handler=_cmd_demo)

    modules = commands.add_parser("modules", help="the module catalog (list, show, run) and the validation suites (test-limits, ...)")
    module_commands = modules.add_subparsers(dest="modules_command", metavar="COMMAND", required=True)
    from .validation.commands import register as register_validation  # other `modules` commands register here too

    register_validation(module_commands)
    from .modules.commands import register as register_catalog

    register_catalog(module_commands)

    from .audit.commands import register as register_audit

    register_audit(commands)

    from .batch.commands import register as register_batch

    register_batch(commands)

    from .runtimes.commands import register as register_runtimes

    register_runtimes(commands)
    return parser


def _cmd_run(options: argparse.Namespace) -> int:
    import json

    from .runtime import Sandbox
    from .runtime.trace_table import trace_records, trace_text

    args = list(options.args)
    audit = None
    if options.audit:
        from .audit import AuditLog
        from .audit.commands import key_from_options

        audit = AuditLog(options.audit, key=key_from_options(options.audit_key_file, options.audit_key_env))
    elif options.audit_key_file or options.audit_key_env:
        raise SandboxError("an audit key was given without an audit log", hint="add --audit FILE")
    sandbox = Sandbox(options.cap, root=options.root, on_violation=options.on_violation, audit=audit)

    def stream(name: str, data: bytes) -> None:
        target = sys.stdout if name == "stdout" else sys.stderr
        target.buffer.write(data)
        target.flush()

    from .runtime.interrupt import route_interrupts

    # Ctrl-C while the guest spins: stop it at the next epoch tick instead of waiting for it
    with route_interrupts(lambda signum: sandbox.cancel("interrupted (Ctrl-C)") > 0):
        result = sandbox.run(options.file, lang=options.lang, args=args, entry=options.entry,
                             on_output=None if options.json else stream, trace=options.trace,
                             runtime=options.runtime)
    failure = result.audit_failure
    if options.trace and not options.json:
        print(trace_text(result.trace), file=sys.stderr)
    if options.json and options.trace:
        print(json.dumps({**result.to_dict(), "trace": trace_records(result.trace)}, default=str, indent=2))
    elif options.json:
        print(result.to_json(indent=2))
    else:
        if failure is None and (not result.ok or result.classify().learn_mode):  # the run's one text form
            for line in repr(result).splitlines():
                print(f"workbench: {_safe(line)}", file=sys.stderr)
        if options.on_violation == "audit":
            suggested = " ".join(f"--cap {cap}" for cap in result.suggested_policy().to_strings())
            print(f"workbench: learn mode; the smallest policy for this run: {suggested or '(no capabilities)'}",
                  file=sys.stderr)
    if failure is not None:
        print(f"workbench: error: the run was stopped: the audit log {options.audit} could not record its events "
              f"({failure.error})", file=sys.stderr)
        return EXIT_AUDIT_FAILED
    if result.violations:
        return EXIT_VIOLATION
    if result.fault is not None and result.fault.trapped:
        return EXIT_FAULT
    return EXIT_OK if result.exit_code == 0 else EXIT_GUEST_FAILED


def _cmd_demo(options: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(sys.stdout)


def _safe(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every character that does not print written as an escape.

    Why: messages quote what the user or the guest wrote (a capability, a path the
    guest asked for), and a raw ESC or U+2028 there would let that text restyle the
    terminal or break one message into several lines.  ``keep_lines`` keeps the line
    breaks of our own multi-line messages (a compile error quotes the source).
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() or (keep_lines and char in "\n\t") else ascii(char)[1:-1] for char in text
    )


def _error_lines(exc: SandboxError) -> str:
    """The message, then its hint, each made terminal-safe."""
    text = f"workbench: error: {_safe(exc.message, keep_lines=True)}"
    return text + (f"\n  hint: {_safe(exc.hint, keep_lines=True)}" if exc.hint else "")


def _warning_line(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """Warnings as one line, like the errors (the default names a source file and line of ours)."""
    print(f"workbench: warning: {_safe(str(message))}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", WorkbenchWarning)  # shown once each, whatever the filters
            warnings.showwarning = _warning_line
            return int(options.handler(options))
    except SandboxError as exc:
        print(_error_lines(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workbench run --json | head`: the reader left; not our error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
