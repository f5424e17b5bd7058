"""``workbench audit show | verify | export``: the audit log from a terminal.

``workbench/cli.py`` calls :func:`register` with its subparsers.  Each
subcommand sets ``handler`` on the parsed namespace (the CLI's convention); the CLI runs
``return options.handler(options)``.  Handlers return an exit code and print one clear
line for a mistake in their input (a missing file, an unwritable output),
never a traceback:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     done (``verify``: the chain is intact)
1     ``verify`` only: the log was altered, or a write was torn by a crash
2     the input is wrong: no such log, unreadable file, unwritable output
====  ==========================================================================

``show`` and ``verify`` never import pandas; ``export`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .log import AuditLog

__all__ = ["register", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_DECISIONS = ("allow", "deny", "kill", "audit")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add the ``audit`` command (with ``show``, ``verify``, ``export``) to ``subparsers``; returns its parser."""
    audit = subparsers.add_parser(
        "audit", help="read, check and export audit logs",
        description="Read, check and export a hash-chained audit log (and its rotated files).",
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="{show,verify,export}", required=True)

    show = sub.add_parser("show", help="print records", description="Print the records of an audit log.")
    show.add_argument("file", metavar="FILE", help="the audit log (its rotated files are read too)")
    show.add_argument("-n", dest="limit", type=_positive, metavar="N", help="only the last N matching records")
    show.add_argument("--run", metavar="RUN", help="only records of this run_id")
    show.add_argument("--decision", choices=_DECISIONS, help="only records with this decision")
    show.set_defaults(handler=_show)

    verify = sub.add_parser("verify", help="check the hash chain",
                            description="Check the hash chain: exit 0 if intact, 1 if altered or torn.")
    verify.add_argument("file", metavar="FILE", help="the audit log (its rotated files are checked too)")
    verify.set_defaults(handler=_verify)

    export = sub.add_parser("export", help="write the records as Parquet or CSV",
                            description="Write the records as a typed table (Parquet) or CSV.")
    export.add_argument("file", metavar="FILE", help="the audit log (its rotated files are read too)")
    export.add_argument("--format", required=True, choices=("parquet", "csv"), help="output format")
    export.add_argument("-o", dest="output", required=True, metavar="OUT", help="output file")
    export.set_defaults(handler=_export)
    return audit


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _error(message: str, hint: str | None = None) -> int:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"  hint: {hint}", file=sys.stderr)
    return EXIT_USAGE


def _open_log(file: str) -> AuditLog | None:
    log = AuditLog(file)
    if log.path.is_dir():
        _error(f"{file} is a folder, not an audit log")
        return None
    if not log.files():
        _error(f"no audit log at {file}", hint="give the live file, e.g. audit.jsonl")
        return None
    return log


def _format_record(rec: dict[str, Any]) -> str:
    try:
        when = datetime.fromtimestamp(rec["ts"] / 1e6, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (KeyError, TypeError, ValueError, OverflowError):
        when = "?"
    what = f"{rec.get('category')}:{rec.get('action')}"
    parts = [f"{rec.get('seq'):>6}", when, str(rec.get("run_id") or "-"), f"{rec.get('decision', '?'):<5}",
             what, str(rec.get("target") or "")]
    if rec.get("capability"):
        parts.append(f"[{rec['capability']}]")
    if rec.get("reason"):
        parts.append(f"- {rec['reason']}")
    return "  ".join(p for p in parts if p)


def _show(args: argparse.Namespace) -> int:
    log = _open_log(args.file)
    if log is None:
        return EXIT_USAGE
    shown: deque[dict[str, Any]] | list[dict[str, Any]] = deque(maxlen=args.limit) if args.limit else []
    try:
        for rec in log.records():
            if args.run is not None and rec.get("run_id") != args.run:
                continue
            if args.decision is not None and rec.get("decision") != args.decision:
                continue
            shown.append(rec)
    except OSError as exc:
        return _error(f"cannot read {args.file}: {exc.strerror or exc}")
    for rec in shown:
        print(_format_record(rec))
    if not shown:
        print("no matching records", file=sys.stderr)
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    log = _open_log(args.file)
    if log is None:
        return EXIT_USAGE
    try:
        result = log.verify()
    except OSError as exc:
        return _error(f"cannot read {args.file}: {exc.strerror or exc}")
    print(result, file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _write_parquet(df: "Any", output: Path) -> None:
    """``df.to_parquet`` but readable back by a plain ``pandas.read_parquet``.

    Why: pandas records the Arrow list dtype of ``caller_chain`` in the file's
    metadata under a name it cannot parse back (pandas 2.x); saying ``object``
    instead makes it read as arrays of names, and ``dtype_backend="pyarrow"``
    still gets the list type.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    meta = json.loads(metadata[b"pandas"])
    for column in meta["columns"]:
        if column["name"] == "caller_chain":
            column["numpy_type"] = "object"
    metadata[b"pandas"] = json.dumps(meta).encode()
    pq.write_table(table.replace_schema_metadata(metadata), output)


def _export(args: argparse.Namespace) -> int:
    log = _open_log(args.file)
    if log is None:
        return EXIT_USAGE
    output = Path(args.output)
    if not output.parent.is_dir():
        return _error(f"cannot write {output}: folder {output.parent} does not exist")
    try:
        df = log.frame()
        if args.format == "parquet":
            _write_parquet(df, output)
        else:
            df = df.assign(caller_chain=[json.dumps(list(c), ensure_ascii=False) for c in df["caller_chain"]])
            df.to_csv(output, index=False)
    except OSError as exc:
        return _error(f"cannot write {output}: {exc.strerror or exc}")
    print(f"wrote {len(df)} records to {output} ({args.format})")
    return EXIT_OK
