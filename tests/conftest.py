"""Shared fixtures.  The compile cache goes to a per-session temporary folder so
tests never read or write the user's real cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_CACHE = tempfile.mkdtemp(prefix="workbench-test-cache-")
os.environ["WORKBENCH_CACHE_DIR"] = _CACHE


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace root with a granted-to-be ``docs/`` folder and bait outside it.

    - ``docs/readme.txt``: the file a grant should make readable;
    - ``secret.txt``: outside every grant;
    - ``docs/escape`` → ``../secret.txt`` (relative symlink leaving the grant);
    - ``docs/abs-escape`` → absolute path of ``secret.txt``;
    - ``docs/hardlink``: a hard link (made by the host) to ``outside/linked.txt``.
    """
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "out").mkdir()
    (root / "outside").mkdir()
    (root / "docs" / "readme.txt").write_text("public notes\n")
    (root / "secret.txt").write_text("TOP-SECRET\n")
    (root / "outside" / "linked.txt").write_text("LINKED-SECRET\n")
    os.symlink("../secret.txt", root / "docs" / "escape")
    os.symlink(str(root / "secret.txt"), root / "docs" / "abs-escape")
    os.link(root / "outside" / "linked.txt", root / "docs" / "hardlink")
    return root
