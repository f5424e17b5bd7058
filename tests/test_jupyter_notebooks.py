"""The magics in real notebooks, executed by nbclient on a real kernel (fixtures in tests/files/).

- ``magics.ipynb``: every option does what it says; the notebook asserts on the
  stored RunResults itself, so a wrong option fails the cell.
- ``errors.ipynb``: each mistake renders as one short line and fails its cell
  (executed with and without the ``raises-exception`` tag), and the kernel lives on.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

FILES = Path(__file__).parent / "files"


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("public notes\n")
    return tmp_path


def _client(nb: nbformat.NotebookNode, cwd: Path) -> NotebookClient:
    return NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})


def _outputs(cell: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [o for o in cell.outputs if o.output_type == kind]


def _result(cell: nbformat.NotebookNode) -> dict[str, str]:
    """The cell's one view of its run: its value."""
    shown = [o.data for o in cell.outputs if o.output_type in ("execute_result", "display_data")
             and o.data.get("text/plain", "").startswith("RunResult ")]
    assert [o.output_type for o in cell.outputs if o.get("data", {}).get("text/plain", "").startswith("Run")] \
        == ["execute_result"]
    assert len(shown) == 1, cell.outputs
    return shown[0]


def test_magics_notebook_runs_and_every_option_works(tmp_path: Path) -> None:
    nb = nbformat.read(FILES / "magics.ipynb", as_version=4)
    _client(nb, _workspace(tmp_path)).execute()  # raises CellExecutionError on any failed assert
    cells = nb.cells
    assert _outputs(cells[0], "stream") == [] and _outputs(cells[0], "execute_result") == []  # silent load
    hello = cells[1]
    assert "".join(o.text for o in _outputs(hello, "stream")) == "hello from the sandbox\n"
    result = _result(hello)
    assert result["text/plain"].splitlines()[0] == "RunResult hello: ok (exit code 0)"
    assert "workbench-result" in result["text/html"]
    bomb = _result(cells[11])
    assert "! deny memory grow 1 MiB of linear memory (had 983 kB) [memory:limit:1MB]" in bomb["text/plain"]
    assert "fdecea" in bomb["text/html"]  # violations highlighted
    assert _outputs(cells[14], "execute_result") == [] and _outputs(cells[14], "display_data") == []  # -q


def test_results_have_stable_text(tmp_path: Path) -> None:
    """Two executions give the same text/plain for every output: nbval can compare them."""
    texts = []
    for run in range(2):
        nb = nbformat.read(FILES / "magics.ipynb", as_version=4)
        folder = tmp_path / str(run)
        folder.mkdir()
        _client(nb, _workspace(folder)).execute()
        texts.append([o.get("data", {}).get("text/plain", o.get("text")) for c in nb.cells for o in c.outputs])
    assert texts[0] == texts[1]
    assert not any("0x" in (t or "") for t in texts[0])


EXPECTED_ERRORS = {
    1: "CapabilityError",
    2: "CompileError",
    3: "ModuleError",
    4: "SandboxViolation",
    5: "UsageError",
    6: "UsageError",
}


def test_errors_render_short_and_the_kernel_lives_on(tmp_path: Path) -> None:
    nb = nbformat.read(FILES / "errors.ipynb", as_version=4)
    _client(nb, _workspace(tmp_path)).execute()  # raises-exception tags: errors allowed
    for index, ename in EXPECTED_ERRORS.items():
        cell = nb.cells[index]
        errors = _outputs(cell, "error")
        if ename == "UsageError":  # IPython prints usage errors to stderr and fails the cell
            text = "".join(o.text for o in _outputs(cell, "stream") if o.name == "stderr")
            assert text.startswith("UsageError: "), cell.outputs
            assert len(text.strip().splitlines()) <= 2
            continue
        assert [e.ename for e in errors] == [ename], cell.outputs
        traceback = "\n".join(errors[0].traceback)
        assert "Traceback" not in traceback and 'File "' not in traceback, traceback
        assert len(traceback.splitlines()) <= 3, traceback
    assert "did you mean 'filesystem'" in "".join(_outputs(nb.cells[1], "error")[0].traceback)
    assert "hint:" in "".join(_outputs(nb.cells[3], "error")[0].traceback)
    strict = nb.cells[4]
    assert _outputs(strict, "display_data"), "the strict-mode result is shown before the error"
    assert "kernel alive" in _outputs(nb.cells[7], "stream")[0].text


def test_each_error_marks_its_cell_failed(tmp_path: Path) -> None:
    """Without the raises-exception tag, every mistake fails the notebook run at that cell."""
    nb = nbformat.read(FILES / "errors.ipynb", as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    client = _client(copy.deepcopy(nb), _workspace(tmp_path))
    with client.setup_kernel():
        client.execute_cell(client.nb.cells[0], 0)
        for index, ename in EXPECTED_ERRORS.items():
            with pytest.raises(CellExecutionError) as info:
                client.execute_cell(client.nb.cells[index], index)
            assert info.value.ename == ename
