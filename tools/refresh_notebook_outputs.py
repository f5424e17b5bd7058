"""Refresh a tutorial's stored outputs where they drifted, and nowhere else.

`make test` compares each tutorial's stored text outputs with a fresh run (nbval), so a real change
in what a run prints (a Python guest's memory peak moving by one 64 KiB page, a backtrace gaining a
frame) fails it, as it should.  When the change is intended, this tool re-executes the notebook as
nbval does (a python3 kernel, working folder ``notebooks/``) and copies the fresh outputs into exactly
the code cells whose text outputs (streams and ``text/plain``) differ, printing each old and new
line; every other cell keeps its stored outputs and metadata, so the diff is only the drift.

Run from the repository root:

    .venv/bin/python tools/refresh_notebook_outputs.py notebooks/02-python-and-c.ipynb          # show
    .venv/bin/python tools/refresh_notebook_outputs.py notebooks/02-python-and-c.ipynb --write  # apply

Then read the diff: a figure that moved for a reason you cannot name is a finding, not drift.
"""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

import nbformat
from nbclient import NotebookClient


def text_outputs(cell: Any) -> list[tuple[str, ...]]:
    """What nbval compares of a code cell, as (kind, [stream name,] text) tuples."""
    found: list[tuple[str, ...]] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            found.append(("stream", output.get("name", ""), "".join(output.get("text", ""))))
        elif "data" in output and "text/plain" in output["data"]:
            found.append((output["output_type"], "".join(output["data"]["text/plain"])))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("--write", action="store_true", help="save the refreshed cells (default: only show them)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may run")
    args = parser.parse_args(argv)
    stored = nbformat.read(args.notebook, as_version=4)
    fresh = copy.deepcopy(stored)
    NotebookClient(fresh, timeout=args.timeout, kernel_name="python3",
                   resources={"metadata": {"path": "notebooks"}}).execute()
    changed = 0
    for index, (old, new) in enumerate(zip(stored.cells, fresh.cells)):
        if old.cell_type != "code" or text_outputs(old) == text_outputs(new):
            continue
        changed += 1
        print(f"cell {index} drifted:")
        for before, after in zip(text_outputs(old), text_outputs(new)):
            if before != after:
                print(f"  stored: {before!r}\n  now:    {after!r}")
        old.outputs = new.outputs
    if changed and args.write:
        nbformat.write(stored, args.notebook)
    print(f"{changed} cell(s) drifted" + (" and were refreshed" if changed and args.write else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
