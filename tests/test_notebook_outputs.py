"""``make test`` fails when a tutorial's outputs drift (issue 14): the stored text outputs are compared.

Was: every run cell was tagged ``nbval-ignore-output``, so a committed "268 MB" stayed while a fresh
run said "256 MiB".  Now only the HTML (which holds timings) is sanitised away; the stable text is
compared.  This test breaks one stored output on purpose and expects nbval to fail on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


def _nbval(folder: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "01-first-steps.ipynb", "--nbval-sanitize-with", str(NOTEBOOKS / "nbval-sanitize.cfg"),
                           "-o", "addopts=", "-W", "ignore::DeprecationWarning"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_a_drifted_output_fails_the_notebook_check(tmp_path: Path) -> None:
    shutil.copytree(NOTEBOOKS / "workspace", tmp_path / "workspace")
    shutil.copy(NOTEBOOKS / "01-first-steps.ipynb", tmp_path / "01-first-steps.ipynb")
    assert _nbval(tmp_path).returncode == 0  # as committed: the outputs match a fresh run
    notebook = json.loads((tmp_path / "01-first-steps.ipynb").read_text())
    broken = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain")
            if isinstance(text, list) and any("256 MiB" in line for line in text):
                output["data"]["text/plain"] = [line.replace("256 MiB", "268 MB") for line in text]
                broken += 1
    assert broken, "no output shows the default memory limit any more"
    (tmp_path / "01-first-steps.ipynb").write_text(json.dumps(notebook))
    done = _nbval(tmp_path)
    assert done.returncode != 0 and "268 MB" in done.stdout, done.stdout[-2000:]
