"""The compile cache: a second run in a new process deserialises instead of compiling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from workbench import probes
from workbench.runtime import CompileCache, Sandbox

SCRIPT = """
import json, sys
from workbench.runtime import CompileCache, Sandbox
cache = CompileCache(sys.argv[1])
result = Sandbox(cache=cache).run(sys.argv[2], lang="wat")
print(json.dumps({"out": result.stdout, "compiles": cache.compiles, "disk_hits": cache.disk_hits}))
"""


def run_in_new_process(cache_dir: Path, source: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(cache_dir), source],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def test_second_process_skips_compilation(tmp_path: Path) -> None:
    source = probes.hello("cached\n")
    first = run_in_new_process(tmp_path / "cache", source)
    second = run_in_new_process(tmp_path / "cache", source)
    assert first == {"out": "cached\n", "compiles": 1, "disk_hits": 0}
    assert second == {"out": "cached\n", "compiles": 0, "disk_hits": 1}


def test_cache_key_includes_engine_configuration(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache")
    Sandbox(cache=cache).run(probes.hello())
    Sandbox(["fuel:limit:1e6"], cache=cache).run(probes.hello())  # fuel engine: another artifact
    assert cache.compiles == 2
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 2
    Sandbox(cache=cache).run(probes.hello())
    assert cache.compiles == 2 and cache.hits == 1


def test_cache_folder_is_private_and_damaged_artifacts_are_recompiled(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache")
    Sandbox(cache=cache).run(probes.hello())
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0
    artifact = next((tmp_path / "cache").glob("*.cwasm"))
    artifact.write_bytes(b"garbage")
    fresh = CompileCache(tmp_path / "cache")
    assert Sandbox(cache=fresh).run(probes.hello("again\n")).stdout == "again\n"
    assert fresh.compiles == 1


def test_shared_folder_writable_by_others_is_not_trusted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    cache = CompileCache(shared)
    Sandbox(cache=cache).run(probes.hello())
    assert list(shared.glob("*.cwasm")) == []  # nothing written where others could plant code
