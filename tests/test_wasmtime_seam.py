"""wasmtime-py's internals are touched in one module only, and an unknown version fails at import.

The scan is of the source (every module of the package), so a new use of a private name
anywhere else fails here, whatever the tests run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench._wasmtime_ffi import KNOWN_VERSIONS, check_version
from workbench.errors import SandboxError

PACKAGE = Path(workbench.__file__).parent
SEAM = PACKAGE / "_wasmtime_ffi.py"
#: private names of wasmtime-py objects and modules that only the seam may use; the package's own
#: classes have attributes of some of these names (``self._memory``), so ``self.<name>`` is allowed
PRIVATE = {"_context", "_from_ptr", "_from_raw", "_bindings", "_ffi", "_func", "_extern", "_wasi", "_linker",
           "_config", "_engine", "_module", "_value", "_memory", "_instance", "_store", "_ptr", "CUSTOM_OUTPUTS",
           "enter_wasm", "wrap_extern"}


def _offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("wasmtime.") or (
                node.module == "wasmtime" and any(alias.name.startswith("_") for alias in node.names)
            ):
                found.append(f"{path.name}:{node.lineno} from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith("wasmtime.")]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return sorted(found, key=lambda text: int(text.split(":")[1].split(" ")[0]))


def test_no_module_but_the_seam_touches_wasmtime_internals() -> None:
    offences = [o for path in sorted(PACKAGE.rglob("*.py")) if path != SEAM for o in _offences(path)]
    assert offences == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from wasmtime import _bindings as ffi\nfrom wasmtime._func import enter_wasm\n"
                   "def f(store, memory):\n    return store._context(), memory._memory, self._memory\n")
    assert [o.split(" ", 1)[1] for o in _offences(bad)] == [
        "from wasmtime import ...", "from wasmtime._func import ...", "._memory", "._context"]


def test_a_version_it_does_not_know_is_refused_with_what_to_install() -> None:
    check_version("50.0.1")
    check_version(f"{KNOWN_VERSIONS[0]}.7")
    for version in ("51.0.0", "49.0.1", "5.0.0", "garbage"):
        with pytest.raises(SandboxError, match=f"wasmtime {version} is installed") as caught:
            check_version(version)
        assert "pip install 'wasmtime==" in str(caught.value)


def test_importing_the_workbench_with_an_unknown_wasmtime_fails_at_once_and_clearly(tmp_path: Path) -> None:
    import wasmtime

    site = tmp_path / "site"  # another install of wasmtime-py, as pip lays it out, at version 99
    site.mkdir()
    (site / "wasmtime").symlink_to(Path(wasmtime.__file__).parent)
    (site / "wasmtime-99.0.0.dist-info").mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", "import workbench"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode != 0
    assert "wasmtime 99.0.0 is installed, but the workbench knows only wasmtime 50.0.x" in proc.stderr
