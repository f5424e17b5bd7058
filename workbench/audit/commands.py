"""``workbench audit show | verify | export | checkpoint | keygen``: the audit log from a terminal.

``workbench/cli.py`` calls :func:`register` with its subparsers.  Each
subcommand sets ``handler`` on the parsed namespace (the CLI's convention); the CLI runs
``return options.handler(options)``.  Handlers return an exit code and print one clear
line for a mistake in their input (a missing file, an unwritable output),
never a traceback:

====  ==========================================================================
code  meaning
====  ==========================================================================
0     done (``verify``: the chain is intact)
1     ``verify`` only: the log was altered, or a write was torn by a crash, or it
      does not match the checkpoint
2     the input is wrong: no such log, unreadable file, unwritable output, a
      missing or malformed key or checkpoint; ``checkpoint``: a log that does
      not verify
====  ==========================================================================

Keys: ``--key-file KEYFILE`` or ``--key-env [VAR]`` (default
``WORKBENCH_AUDIT_KEY``) give a keyed log's HMAC key; ``--signing-key`` and
``--public-key`` are ed25519 keys in PEM (``keygen ed25519`` writes both).

``show`` and ``verify`` never import pandas; ``export`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from .keys import DEFAULT_KEY_ENV, AuditKey
from .log import AuditLog

__all__ = ["register", "key_from_options", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_DECISIONS = ("allow", "deny", "kill", "audit")


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add the ``audit`` command (``show``, ``verify``, ``export``, ``checkpoint``, ``keygen``) to ``subparsers``."""
    audit = subparsers.add_parser(
        "audit", help="read, check and export audit logs",
        description="Read, check and export a hash-chained audit log (and its rotated files).",
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="{show,verify,export,checkpoint,keygen}", required=True)

    show = sub.add_parser("show", help="print records", description="Print the records of an audit log.")
    show.add_argument("file", metavar="FILE", help="the audit log (its rotated files are read too)")
    show.add_argument("-n", dest="limit", type=_positive, metavar="N", help="only the last N matching records")
    show.add_argument("--run", metavar="RUN", help="only records of this run_id")
    show.add_argument("--decision", choices=_DECISIONS, help="only records with this decision")
    show.set_defaults(handler=_show)

    verify = sub.add_parser("verify", help="check the hash chain (and its MACs, and a signed checkpoint)",
                            description="Check the hash chain: exit 0 if intact, 1 if altered or torn. With the "
                                        "log's key, every MAC is checked too; with a signed checkpoint and the "
                                        "public key you trust, the log must still hold what it vouches for.")
    verify.add_argument("file", metavar="FILE", help="the audit log (its rotated files are checked too)")
    _key_options(verify)
    verify.add_argument("--checkpoint", metavar="CHECKPOINT", help="a signed checkpoint (workbench audit checkpoint)")
    verify.add_argument("--public-key", metavar="PUBKEY", help="the ed25519 public key (PEM) that must have signed it")
    verify.set_defaults(handler=_verify)

    checkpoint = sub.add_parser("checkpoint", help="sign the log's current state (ed25519)",
                                description="Verify the log, then sign its last record's seq and hash with an "
                                            "ed25519 key: anyone with the public key can check the log against it.")
    checkpoint.add_argument("file", metavar="FILE", help="the audit log")
    checkpoint.add_argument("--signing-key", required=True, metavar="KEYFILE",
                            help="ed25519 private key, PEM (workbench audit keygen ed25519 KEYFILE)")
    checkpoint.add_argument("-o", dest="output", required=True, metavar="OUT", help="checkpoint file to write")
    _key_options(checkpoint)
    checkpoint.set_defaults(handler=_checkpoint)

    keygen = sub.add_parser("keygen", help="make a key: hmac (keyed logs) or ed25519 (checkpoints)",
                            description="hmac: 32 random bytes as 64 hex characters, for --key-file. ed25519: a "
                                        "private key (PEM) in OUT and its public key in OUT.pub. Files are made "
                                        "readable by their owner only, and never overwritten.")
    keygen.add_argument("kind", choices=("hmac", "ed25519"))
    keygen.add_argument("output", metavar="OUT", help="file to write (must not exist)")
    keygen.set_defaults(handler=_keygen)

    export = sub.add_parser("export", help="write the records as Parquet or CSV",
                            description="Write the records as a typed table (Parquet) or CSV.")
    export.add_argument("file", metavar="FILE", help="the audit log (its rotated files are read too)")
    export.add_argument("--format", required=True, choices=("parquet", "csv"), help="output format")
    export.add_argument("-o", dest="output", required=True, metavar="OUT", help="output file")
    export.set_defaults(handler=_export)
    return audit


def _key_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--key-file", metavar="KEYFILE", help="the keyed log's HMAC key, from this file")
    group.add_argument("--key-env", metavar="VAR", nargs="?", const=DEFAULT_KEY_ENV,
                       help=f"the keyed log's HMAC key, from this environment variable (default {DEFAULT_KEY_ENV})")


def key_from_options(key_file: str | None, key_env: str | None) -> AuditKey | None:
    """The :class:`AuditKey` named by ``--key-file``/``--key-env`` (``run``: ``--audit-key-...``), or None."""
    if key_file:
        return AuditKey.from_file(key_file)
    if key_env:
        return AuditKey.from_env(key_env)
    return None


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


def _open_log(file: str, key: AuditKey | None = None) -> AuditLog | None:
    log = AuditLog(file, key=key)
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
    if (args.checkpoint is None) != (args.public_key is None):
        return _error("--checkpoint and --public-key go together",
                      hint="a checkpoint is checked against the public key you trust, not the one it names")
    try:
        log = _open_log(args.file, key_from_options(args.key_file, args.key_env))
        if log is None:
            return EXIT_USAGE
        result = log.verify(checkpoint=args.checkpoint, public_key=args.public_key)
    except SandboxError as exc:
        return _error(exc.message, exc.hint)
    except OSError as exc:
        return _error(f"cannot read {args.file}: {exc.strerror or exc}")
    print(result, file=sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _checkpoint(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if not output.parent.is_dir():
        return _error(f"cannot write {output}: folder {output.parent} does not exist")
    try:
        log = _open_log(args.file, key_from_options(args.key_file, args.key_env))
        if log is None:
            return EXIT_USAGE
        checkpoint = log.checkpoint(args.signing_key)
        checkpoint.save(output)
    except SandboxError as exc:
        return _error(exc.message, exc.hint)
    except OSError as exc:
        return _error(f"cannot write {output}: {exc.strerror or exc}")
    keyed = ", MACs checked" if checkpoint.keyed else ""
    print(f"signed seq {checkpoint.seq} (hash {checkpoint.hash[:16]}...{keyed}) of {args.file} into {output}")
    return EXIT_OK


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data``, readable as ``mode`` says; never replace an existing file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _keygen(args: argparse.Namespace) -> int:
    output = Path(args.output)
    try:
        if args.kind == "hmac":
            _write_new(output, AuditKey.generate().secret_text() + b"\n", 0o600)
            print(f"wrote an HMAC audit key to {output} (keep it secret; use --key-file {output})")
            return EXIT_OK
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            PublicFormat,
        )

        private = Ed25519PrivateKey.generate()
        public = output.with_name(output.name + ".pub")
        if public.exists():
            return _error(f"{public} exists: keygen never overwrites a key")
        _write_new(output, private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()), 0o600)
        _write_new(public, private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo), 0o644)
    except FileExistsError:
        return _error(f"{output} exists: keygen never overwrites a key")
    except OSError as exc:
        return _error(f"cannot write {output}: {exc.strerror or exc}")
    print(f"wrote an ed25519 signing key to {output} (keep it secret) and its public key to {public}")
    return EXIT_OK


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
