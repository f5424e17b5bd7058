"""``%%sandbox``, ``%sandbox run``, ``%sandbox_policy`` and ``%sandbox_audit``.

A thin layer, in the manner of jupysql: parse the line, call the library,
present the result.  Argument mistakes are IPython ``UsageError``s; mistakes
in what the user asked for (a capability, a module, a file) are the library's
own :class:`~workbench.errors.SandboxError`s, which render as one short line
with a hint (``_render_traceback_``) and still fail nbclient, nbval and
papermill.  A run that ends in a violation is a result, not an error, unless
``--strict`` (or ``%config SandboxMagics.strict = True``) asks for one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, argument_group, kwds, magic_arguments
from IPython.utils.text import dedent
from traitlets import Bool, Enum, Float, Int, List, TraitError, Unicode, validate

from ..errors import SandboxError, SandboxViolation
from ..policy import Policy
from ..runtime import DEFAULT_LIMITS, RunResult, Sandbox
from .errors import RunInterrupted
from .options import SHORTCUTS, default_limits, parse_assignments, resolve_policy, shortcut_capabilities
from .magic_helpers import audit_log_class as _audit_log_class
from .magic_helpers import close_match as _close
from .magic_helpers import kernel_present as _kernel_present
from .magic_helpers import plain_help as _plain_help
from .magic_helpers import split_argv as _split_argv
from .debug_view import show_debug, show_figures
from .runner import CellRun

__all__ = ["SandboxMagics"]

_EXAMPLES = dedent(
    """
    examples:
      %%sandbox hello                          run the WAT module in the cell, deny-by-default
      %%sandbox reader --cap filesystem:read:/docs --timeout 2s -o result
      %%sandbox --memory 64MB --cpu 50% --fuel 1e9 --on-violation kill --strict
      %%sandbox --input data=my_variable --lang python
      %sandbox run probe.wat --cap filesystem:read:/docs -- ARG1 ARG2
      %sandbox_policy readonly filesystem:read:/docs time:limit:5s
      %%sandbox --policy readonly
      %sandbox_audit audit.jsonl -o frame
      %config SandboxMagics.default_memory = '64MB'

    The cell's value is the RunResult; -o VAR also stores it.  A violation is
    shown (and stored), not raised, unless --strict.  The stop button (■)
    stops a running module: the run ends with a cancel violation.
    """
)


@magics_class
class SandboxMagics(Magics):
    """Run WebAssembly modules from notebook cells under capabilities, with live gauges."""

    default_caps = List(
        Unicode(),
        default_value=[],
        help="Capabilities every run gets in addition to its own --cap options (e.g. ['time:limit:10s']).",
    ).tag(config=True)
    default_memory = Unicode(
        "", help="Memory limit for runs that set none, e.g. '64MB' (empty: the runtime's 256 MiB)."
    ).tag(config=True)
    default_timeout = Unicode(
        "", help="Wall-clock limit for runs that set none, e.g. '10s' (empty: the runtime's 30 s)."
    ).tag(config=True)
    default_cpu = Unicode("", help="CPU limit for runs that set none: a share ('50%') or a budget ('2s').").tag(
        config=True
    )
    default_fuel = Unicode("", help="Instruction budget for runs that set none, e.g. '1e9' (empty: none).").tag(
        config=True
    )
    default_root = Unicode(".", help="Host folder the guest's / maps to when --root is not given.").tag(config=True)
    on_violation = Enum(
        ["deny", "kill", "audit"], default_value="deny", help="What a violation does when --on-violation is not given."
    ).tag(config=True)
    strict = Bool(False, help="Raise SandboxViolation when a run ends in a violation (as --strict does).").tag(
        config=True
    )
    widgets = Bool(True, help="Show live gauges while a module runs (off: text only, as --no-widgets).").tag(
        config=True
    )
    updates_per_second = Float(
        10.0, help="Most comm messages per second the live view sends (at most 10: Jupyter drops floods)."
    ).tag(config=True)
    show_gauges_after = Float(
        0.25, help="Seconds a run must last before gauges appear; quicker runs show only their summary."
    ).tag(config=True)
    audit_log = Unicode("", help="Audit log file every run appends to when --audit is not given (empty: none).").tag(
        config=True
    )
    max_stream_bytes = Int(
        200_000, help="Most bytes of a module's stdout+stderr shown in the cell; the rest stays in the RunResult."
    ).tag(config=True)

    @property
    def _namespace(self) -> dict[str, Any]:
        """The user's namespace (a magic always runs inside a shell)."""
        assert self.shell is not None, "SandboxMagics needs an IPython shell"
        return self.shell.user_ns

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.policies: dict[str, Policy] = {}
        self.last_result: RunResult | None = None
        self._last_audit: str | None = None
        self._audit_logs: dict[str, Any] = {}

    # -- config validation ----------------------------------------------------------------------
    @validate("default_memory", "default_timeout", "default_cpu", "default_fuel")
    def _check_limit(self, proposal: Any) -> str:
        option = proposal["trait"].name.removeprefix("default_")
        try:
            default_limits({option: proposal["value"]}, DEFAULT_LIMITS)
        except SandboxError as exc:
            raise TraitError(str(exc)) from None
        return str(proposal["value"])

    @validate("updates_per_second")
    def _check_rate(self, proposal: Any) -> float:
        value = float(proposal["value"])
        if not 0 < value <= 10:
            raise TraitError(f"updates_per_second must be in (0, 10], got {value}")
        return value

    @validate("default_caps")
    def _check_caps(self, proposal: Any) -> list[str]:
        try:
            Policy.parse(list(proposal["value"]))
        except SandboxError as exc:
            raise TraitError(str(exc)) from None
        return list(proposal["value"])

    # -- %%sandbox / %sandbox run ---------------------------------------------------------------
    @_plain_help("%%")
    @magic_arguments()
    @kwds(epilog=_EXAMPLES)
    @argument(
        "words",
        nargs="*",
        metavar="NAME | run FILE",
        help="%%%%sandbox: an optional module NAME; %%sandbox run FILE: run a .wat, .wasm, .c or .py file",
    )
    @argument_group("capabilities")
    @argument("--cap", action="append", default=[], metavar="CAP", help="grant a capability (repeatable)")
    @argument("--policy", metavar="NAME", help="start from a policy defined with %%sandbox_policy (or a variable)")
    @argument("--root", metavar="DIR", help="host folder the guest's / maps to (default: .)")
    @argument_group("limits (shortcuts for the limit capabilities)")
    @argument("--timeout", metavar="T", help="wall-clock limit, e.g. 2s (time:limit:T)")
    @argument("--memory", metavar="M", help="linear memory cap, e.g. 64MB or 64MiB (memory:limit:M)")
    @argument("--cpu", metavar="P", help="CPU share (50%%) or CPU-time budget (2s) (cpu:limit:P)")
    @argument("--fuel", metavar="F", help="instruction budget, e.g. 1e9 (fuel:limit:F)")
    @argument_group("the module")
    @argument("--lang", metavar="L", help="wat, wasm, python or c (c needs the [c] extra); default: detected")
    @argument("--entry", default="_start", metavar="FUNC", help="exported function to call (default: _start)")
    @argument("--runtime", metavar="NAME", help="Python: an installed runtime (scientific: numpy, pandas, matplotlib)")
    @argument("--input", action="append", default=[], metavar="NAME=VAR", help="pass notebook variable VAR in as NAME")
    @argument("--stdin", metavar="VAR", help="feed the text or bytes in notebook variable VAR to the module's stdin")
    @argument_group("results and violations")
    @argument("--on-violation", choices=["deny", "kill", "audit"], help="deny and go on (default), or kill the run")
    @argument("--strict", action="store_true", help="raise SandboxViolation when the run ends in a violation")
    @argument("-o", "--out", dest="out", metavar="VAR", help="store the RunResult in variable VAR")
    @argument("--audit", metavar="FILE", help="append every decision to the audit log FILE (JSON Lines)")
    @argument_group("debugging")
    @argument("--trace", action="store_true", help="record every WASI call (shown below; RunResult.trace)")
    @argument("--keep-memory", action="store_true", help="keep a copy of the guest's memory (RunResult.memory)")
    @argument("--profile", action="store_true", help="sample where the guest spends its time (RunResult.profile; NAME-profile.json)")
    @argument_group("display")
    @argument("-q", "--quiet", action="store_true", help="no gauges, no summary (the module's output still shows)")
    @argument("--no-widgets", action="store_true", help="no live gauges; a text/HTML summary only")
    @line_cell_magic
    def sandbox(self, line: str, cell: str | None = None) -> RunResult | None:
        """Run the WebAssembly module in the cell (or a file) in a sandbox, deny-by-default.

        Everything the module may do is a capability (--cap); limits have
        shortcuts.  Module arguments go after --.
        """
        argv, module_args = _split_argv(line)
        args = self.sandbox.parser.parse_args(argv)  # UsageError on bad options
        words = list(args.words)
        if cell is None and len(words) == 2 and words[0] == "module":  # a catalog module (extensions/)
            return self._run_module(args, words[1])
        if cell is None:
            if not words or words[0] != "run" or len(words) != 2:
                raise UsageError(
                    "usage: %sandbox run FILE [options] [-- ARGS] or %sandbox module NAME [--input NAME=VAR]; "
                    "for a module in the cell use %%sandbox (two %)"
                )
            path = Path(os.path.expanduser(words[1]))
            source: Any = path
            name = path.stem
        else:
            if len(words) > 1:
                raise UsageError(
                    f"%%sandbox takes one module NAME, got {' '.join(words)!r}; put module arguments after --"
                )
            if not cell.strip():
                raise UsageError("the cell is empty: write the module below %%sandbox, e.g. (module ...)")
            source = cell
            name = words[0] if words else "cell"
        return self._run(args, source, name, module_args)

    def _run(self, args: Any, source: Any, name: str, module_args: list[str]) -> RunResult | None:
        sandbox = self._sandbox(args)
        inputs = self._inputs(args.input)
        stdin = self._stdin(args.stdin)
        runner = CellRun(
            live=self.widgets and not args.no_widgets and not args.quiet and _kernel_present(self.shell),
            rate=self.updates_per_second,
            show_after=self.show_gauges_after,
            max_stream_bytes=self.max_stream_bytes,
        )
        result = runner.execute(
            sandbox, source, lang=args.lang, name=name, args=module_args, stdin=stdin, inputs=inputs, entry=args.entry,
            debug={"trace": args.trace, "keep_memory": args.keep_memory, "profile": args.profile}, runtime=args.runtime,
        )
        show_figures(result)
        show_debug(result, args.quiet, name)
        self.last_result = result
        if args.out:
            self._namespace[args.out] = result
        if runner.interrupted:
            self._show(result, args.quiet)
            where = f"; the RunResult is in {args.out}" if args.out else "; -o VAR keeps the RunResult"
            raise RunInterrupted(f"stopped the sandboxed run of {name!r}{where}", result=result)
        if result.violations and (args.strict or self.strict):
            self._show(result, args.quiet)
            first = result.violations[0]
            count = len(result.violations)
            raise SandboxViolation(
                f"run of {name!r} ended with {count} violation{'s' if count != 1 else ''}; first: {first}",
                result=result,
                hint="the RunResult is shown above" + (f" and stored in {args.out}" if args.out else "")
                + "; drop --strict to get it as the cell's value instead",
            )
        return None if args.quiet else result

    def _run_module(self, args: Any, name: str) -> RunResult | None:
        """``%sandbox module NAME --input key=VAR``: the catalog module under this cell's capabilities
        (a DataFrame input travels as its list of records)."""
        inputs = {key: _as_json_data(value) for key, value in (self._inputs(args.input) or {}).items()}
        result = self._sandbox(args).run_module(name, inputs)
        self.last_result = result
        if args.out:
            self._namespace[args.out] = result
        return None if args.quiet else result

    def _show(self, result: RunResult, quiet: bool) -> None:
        if not quiet:
            from IPython.display import display

            display(result)

    def _sandbox(self, args: Any) -> Sandbox:
        try:
            base = resolve_policy(args.policy, self.policies, self._namespace)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        shortcuts = {option: getattr(args, option) for option in SHORTCUTS}
        caps = [*self.default_caps, *base.to_strings(), *args.cap, *shortcut_capabilities(shortcuts)]
        policy = Policy.parse(caps)  # CapabilityError: short, with a did-you-mean
        defaults = default_limits(
            {option: getattr(self, f"default_{option}") for option in SHORTCUTS}, DEFAULT_LIMITS
        )
        return Sandbox(
            policy,
            root=args.root or self.default_root,
            audit=self._audit(args.audit),
            defaults=defaults,
            on_violation=cast(Any, args.on_violation or self.on_violation),
        )

    def _audit(self, path: str | None) -> Any:
        path = path or self.audit_log or None
        if path is None:
            return None
        path = os.path.abspath(os.path.expanduser(path))
        if path not in self._audit_logs:
            self._audit_logs[path] = _audit_log_class()(path)
        self._last_audit = path
        return self._audit_logs[path]

    def _variable(self, name: str, option: str) -> Any:
        namespace = self._namespace
        if name not in namespace:
            public = [k for k in namespace if not k.startswith("_")]
            raise UsageError(f"{option}: no variable {name!r} in the notebook{_close(name, public)}")
        return namespace[name]

    def _inputs(self, items: list[str]) -> dict[str, Any] | None:
        if not items:
            return None
        try:
            pairs = parse_assignments(items, "--input")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return {name: self._variable(var, "--input") for name, var in pairs.items()}

    def _stdin(self, name: str | None) -> str | bytes | None:
        if name is None:
            return None
        value = self._variable(name, "--stdin")
        if not isinstance(value, (str, bytes, bytearray)):
            raise UsageError(f"--stdin {name}: the variable holds {type(value).__name__}; it must be str or bytes")
        return bytes(value) if isinstance(value, bytearray) else value

    # -- %sandbox_policy --------------------------------------------------------------------------
    @_plain_help("%")
    @magic_arguments()
    @kwds(epilog="examples:\n  %sandbox_policy readonly filesystem:read:/docs time:limit:5s\n  %sandbox_policy")
    @argument("name", nargs="?", help="the policy's name (none: list the defined policies)")
    @argument("caps", nargs="*", metavar="CAP", help="its capabilities (none: show the policy)")
    @line_magic
    def sandbox_policy(self, line: str) -> None:
        """Define a named policy for --policy NAME, show one, or list them all."""
        args = self.sandbox_policy.parser.parse_argstring(line)
        if args.name is None:
            if not self.policies:
                print("no policies defined yet; %sandbox_policy NAME CAP... defines one")
            for name, policy in sorted(self.policies.items()):
                print(f"{name}: {policy}")
            return
        if not args.name.isidentifier():
            raise UsageError(f"policy names are identifiers (letters, digits, _), got {args.name!r}")
        if not args.caps:
            if args.name not in self.policies:
                raise UsageError(f"no policy {args.name!r}{_close(args.name, list(self.policies))}")
            print(f"{args.name}: {self.policies[args.name]}")
            return
        self.policies[args.name] = Policy.parse(args.caps)

    # -- %sandbox_audit ---------------------------------------------------------------------------
    @_plain_help("%")
    @magic_arguments()
    @kwds(epilog="examples:\n  %sandbox_audit audit.jsonl\n  %sandbox_audit --decision deny --run 3f2a\n"
                 "  %sandbox_audit --since '2026-01-31 12:00' -o records\n  %sandbox_audit --full")
    @argument("file", nargs="?", help="the audit log (default: the last --audit file, or SandboxMagics.audit_log)")
    @argument("-o", "--out", dest="out", metavar="VAR", help="store the selected records (a DataFrame) in VAR")
    @argument("--last", action="store_true", help="only the records of the last run")
    @argument("--run", metavar="ID", help="only the run whose id starts with ID")
    @argument("--decision", choices=["allow", "deny", "kill", "audit"], help="only records with this decision")
    @argument("--since", metavar="TIME", help="only records at or after TIME (UTC, e.g. '2026-01-31 12:00')")
    @argument("--full", action="store_true", help="the full frame, every column in storage order")
    @argument("--rows", type=int, default=200, metavar="N", help="most decision rows drawn (default 200)")
    @line_magic
    def sandbox_audit(self, line: str) -> Any:
        """Review an audit log: its verification, a summary per run, then the decisions, useful columns first."""
        args = self.sandbox_audit.parser.parse_argstring(line)
        path = args.file or self._last_audit or self.audit_log or None
        if path is None:
            raise UsageError("no audit log yet: pass FILE, or run with --audit FILE (or %config SandboxMagics.audit_log)")
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise SandboxError(f"audit log {path} does not exist", hint="run a cell with --audit FILE first")
        from ..audit.review import compact, runs, select

        log = _audit_log_class()(path)
        frame = log.frame()
        run = args.run
        if args.last and self.last_result is not None:
            run = self.last_result.run_id
        try:
            frame = select(frame, run=run, decision=args.decision, since=args.since)
        except ValueError as exc:  # a --since pandas cannot read
            raise UsageError(f"--since {args.since!r}: {exc}") from None
        if args.out:
            self._namespace[args.out] = frame
        if args.full:
            return frame
        from .audit_view import AuditView

        try:
            check = log.verify()
            verdict = f"verified, {check.records} records" if check.ok else f"NOT verified: {check}"
        except SandboxError as exc:  # a keyed log read without its key, ...
            verdict = f"not verified: {exc}"
        return AuditView(path=path, verdict=verdict, runs=runs(frame), frame=compact(frame), rows=args.rows)


def _as_json_data(value: Any) -> Any:
    """A DataFrame as its records (what a catalog module takes); anything else as it is."""
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None and hasattr(value, "columns"):
        return to_dict(orient="records")
    return value
