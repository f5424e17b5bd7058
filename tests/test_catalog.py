"""The extensions/ catalog: manifests, the user's own folder, the CLI, run_module, the magic form."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from workbench import Sandbox
from workbench.cli import main
from workbench.errors import EscalationError, ManifestError, ModuleError
from workbench.modules import Catalog, default_catalog, load_manifest
from workbench.modules.catalog import BUILTIN

GOOD = {
    "name": '"demo"', "language": '"python"', "description": '"a demo"', "capabilities": "[]",
    "exports": '["run"]',
}


def write_manifest(folder: Path, fields: dict[str, str], tables: str = "[inputs]\n[outputs]\n",
                   source: str = "result = 1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(source)
    (folder / "manifest.toml").write_text("".join(f"{k} = {v}\n" for k, v in fields.items()) + tables)
    return folder


def test_the_builtin_catalog_has_the_five_modules_and_is_found_from_the_package() -> None:
    assert BUILTIN.is_dir() and (BUILTIN / "include" / "workbench.h").is_file()
    names = Catalog().names()
    assert {"parser", "wordcount", "fetcher", "pipeline", "adversary"} <= set(names)
    for manifest in Catalog().manifests():
        assert manifest.description and manifest.inputs and manifest.outputs and manifest.exports
        assert manifest.source.is_file()


def test_the_catalog_ships_with_the_package_data() -> None:
    """``make test`` on a fresh clone: the editable install finds extensions/ next to the package."""
    import workbench.modules.catalog as catalog

    assert Path(catalog.__file__).resolve().parents[2] / "extensions" == BUILTIN


@pytest.mark.parametrize("change, field", [
    ({"name": None}, "name"),
    ({"name": '"other"'}, "name"),
    ({"language": '"rust"'}, "language"),
    ({"capabilities": '["filesystem:raed:/x"]'}, "capabilities"),
    ({"capabilities": '"filesystem:read:/x"'}, "capabilities"),
    ({"exports": "[1]"}, "exports"),
    ({"description": '""'}, "description"),
    ({"source": '"../escape.py"'}, "source"),
    ({"source": '"missing.py"'}, "source"),
    ({"colour": '"red"'}, "colour"),
])
def test_a_manifest_error_names_its_file_field_and_a_fix(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    fields = {**GOOD, **{k: v for k, v in change.items() if v is not None}}
    for key, value in change.items():
        if value is None:
            del fields[key]
    folder = write_manifest(tmp_path / "demo", fields)
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert caught.value.field == field and caught.value.file == str(folder / "manifest.toml")
    assert caught.value.hint and str(folder / "manifest.toml") in str(caught.value)


def test_a_manifest_that_is_not_toml_is_a_manifest_error(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "manifest.toml").write_text("name = [unclosed\n")
    with pytest.raises(ManifestError, match="not valid TOML"):
        load_manifest(folder)


def test_inputs_must_be_a_table(tmp_path: Path) -> None:
    folder = write_manifest(tmp_path / "demo", {**GOOD, "inputs": '"text"'}, tables="[outputs]\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(folder)
    assert caught.value.field == "inputs"


def test_a_users_catalog_folder_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(tmp_path / "mine" / "demo", GOOD, source="result = {'answer': inputs['n'] * 2}")
    monkeypatch.setenv("WORKBENCH_EXTENSIONS", str(tmp_path / "mine"))
    assert "demo" in default_catalog().names() and "parser" in default_catalog().names()
    assert Sandbox([]).run_module("demo", {"n": 21}).value == {"answer": 42}


def test_an_unknown_module_names_a_close_match() -> None:
    with pytest.raises(ModuleError, match="did you mean 'parser'"):
        Sandbox([]).run_module("parsr")
    for bad in ("../etc", "", "a/b"):
        with pytest.raises(ModuleError):
            default_catalog().get(bad)


def test_run_module_attenuates_and_an_escalation_is_raised_and_recorded(tmp_path: Path) -> None:
    seen: list[Any] = []
    sandbox = Sandbox([], root=tmp_path)
    sandbox.subscribe(seen.append)
    with pytest.raises(EscalationError, match="filesystem:read:/data"):
        sandbox.run_module("parser", {"text": "a\n1\n"})
    assert [(e.category, e.action, e.decision, e.target) for e in seen] == [("module", "call", "deny", "parser")]


def test_run_module_runs_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.json").write_text('[{"a": "x y"}, {"a": "y"}]')
    sandbox = Sandbox(["filesystem:read:/data", "module:call:parser", "module:call:wordcount"], root=tmp_path)
    assert sandbox.run_module("parser", {"path": "/data/t.json"}).value["count"] == 2
    assert sandbox.run_module("wordcount", {"text": "a a b"}).value == {"words": 3, "top": [["a", 2], ["b", 1]]}
    piped = sandbox.run_module("pipeline", {"path": "/data/t.json"})
    assert piped.value == {"records": 2, "words": 3, "top": [["y", 2], ["x", 1]]}
    assert [c.module for c in piped.calls] == ["parser", "wordcount"]


def test_the_adversary_gets_nothing(tmp_path: Path) -> None:
    result = Sandbox(["filesystem:write:/tmp", "memory:limit:64MiB"], root=tmp_path).run_module(
        "adversary", {"memory_mb": 128})
    report = result.value
    assert report["escaped"] == 0, report
    assert len(report["attempts"]) >= 12 and all(v.startswith("refused") for v in report["attempts"].values())
    assert len(result.violations) >= 10  # each refusal is on the record


def test_cli_modules_list_show_and_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modules", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("parser", "wordcount", "fetcher", "pipeline", "adversary"))
    assert main(["modules", "show", "pipeline"]) == 0
    assert "module:call:parser" in capsys.readouterr().out
    assert main(["modules", "run", "wordcount", "--input", "text=a b a", "--input", "top=1"]) == 0
    assert json.loads(capsys.readouterr().out) == {"words": 3, "top": [["a", 2]]}


@pytest.mark.parametrize("argv", [
    ["modules", "show", "nope"],
    ["modules", "run", "nope"],
    ["modules", "run", "parser", "--input", "text=a"],  # asks for /data, which the terminal did not grant
    ["modules", "run", "wordcount", "--input", "novalue"],
    ["modules", "run", "wordcount", "--payload", "{bad"],
    ["modules", "run", "wordcount", "--cap", "filesystem:raed:/x"],
])
def test_cli_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_cli_exit_code_as_a_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "modules", "run", "nope"],
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"},
                          timeout=120)
    assert proc.returncode == 2 and "no module 'nope'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture
def ip(tmp_path: Path) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    old = os.getcwd()
    os.chdir(tmp_path)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "workbench")
        shell.user_ns.clear()
        InteractiveShell.clear_instance()
        os.chdir(old)


def test_the_magic_runs_a_catalog_module_with_a_dataframe(ip: Any) -> None:
    import pandas as pd

    (Path.cwd() / "data").mkdir()
    ip.user_ns["df"] = pd.DataFrame({"text": ["to be", "or not to be"]})
    result = ip.run_line_magic("sandbox", "module wordcount --input records=df -q -o out")
    assert result is None and ip.user_ns["out"].value["words"] == 6
    shown = ip.run_line_magic("sandbox", "module parser --input data=df --cap filesystem:read:/data")
    assert shown.value["records"] == [{"text": "to be"}, {"text": "or not to be"}]
