#!/usr/bin/env bash
# CI's stand-in for mybinder.org: does a fresh environment built from exactly the binder/ files get a new
# user to working widgets?  Builds a venv from binder/requirements.txt (as repo2docker does, from the
# repository root), adds what repo2docker's base image brings (a Jupyter server, nbclient), runs
# binder/postBuild, then executes notebooks/01-first-steps.ipynb in that venv's kernel.  Finally
# `jupyter-repo2docker --no-build` renders the Dockerfile for this repository, which fails on a
# binder/ folder it cannot read.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d -t binder-check-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet -r binder/requirements.txt nbclient nbformat ipykernel
HOME_CACHE="$work/home"  # a fresh home: postBuild's caches are made here, nothing is borrowed
mkdir -p "$HOME_CACHE"
env -u RUST_BACKTRACE HOME="$HOME_CACHE" PATH="$work/venv/bin:$PATH" bash binder/postBuild
env -u RUST_BACKTRACE HOME="$HOME_CACHE" PATH="$work/venv/bin:$PATH" "$work/venv/bin/python" - <<'PY'
import time

import nbformat
from nbclient import NotebookClient

nb = nbformat.read("notebooks/01-first-steps.ipynb", as_version=4)
started = time.monotonic()
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=False,
               resources={"metadata": {"path": "notebooks"}}).execute()
print(f"binder check: notebook 01 ran in {time.monotonic() - started:.1f} s")
PY
"$work/venv/bin/python" -m pip install --quiet jupyter-repo2docker
"$work/venv/bin/jupyter-repo2docker" --no-build --debug . > "$work/repo2docker.log" 2>&1 || {
    cat "$work/repo2docker.log"; exit 1; }
grep -q "postBuild" "$work/repo2docker.log" || { echo "repo2docker did not pick up binder/postBuild"; exit 1; }
echo "binder check: repo2docker rendered the Dockerfile with binder/postBuild"
