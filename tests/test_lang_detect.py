"""``lang=None``: the language is detected from the content or the path, and a weak guess says so."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import wasmtime

from workbench import ModuleError, probes
from workbench.languages import LanguageGuessWarning, guess_language, load_module_source

WAT = probes.hello("hi\n")
WASM = bytes(wasmtime.wat2wasm(WAT))

# (id, source, expected language, confident?)
TABLE = [
    ("wat-module", WAT, "wat", True),
    ("wat-after-comments", ";; a probe\n(; block ;)\n(module)", "wat", True),
    ("wat-component", "(component)", "wat", True),
    ("wasm-bytes", WASM, "wasm", True),
    ("c-hello", '#include <stdio.h>\nint main(void) { printf("hi\\n"); return 0; }\n', "c", True),
    ("c-no-include", "int main(void) {\n    int total = 0;\n    for (int i = 0; i < 3; i++) total += i;\n    return total;\n}\n", "c", True),
    ("c-as-bytes", b"#include <stdlib.h>\nint main(void) { return EXIT_SUCCESS; }\n", "c", True),
    ("c-main-only", "void main() { }", "c", True),
    ("python-print", 'print("hi")', "python", True),
    ("python-def", "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n", "python", True),
    ("python-import", "import json, sys\nsys.stdout.write(json.dumps({'a': 1}))\n", "python", True),
    ("python-hash-comment", "# include this\nx = [i * i for i in range(3)]\n", "python", True),
    ("python-class", "class Point:\n    def __init__(self):\n        self.x = 0\n", "python", True),
    ("python-as-bytes", b"result = sum(inputs.get('xs', []))\n", "python", True),
    ("python-with-syntax-error", "def broken(:\n    pass\n", "python", False),
    ("weak-c-fragment", "x = y +;\n", "c", False),
    ("only-comments", "# nothing here\n\n", "python", False),
]


@pytest.mark.parametrize("source, lang, confident", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_language_is_detected(source: str | bytes, lang: str, confident: bool) -> None:
    guess = guess_language(source)
    assert (guess.lang, guess.confident) == (lang, confident), guess.reason
    if confident:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert load_module_source(source).lang == lang
    else:
        with pytest.warns(LanguageGuessWarning) as record:
            loaded = load_module_source(source)
        assert loaded.lang == lang and loaded.note
        message = str(record[0].message)
        assert f"guessed lang={lang!r}" in message and "pass lang=" in message  # which, and how to override


@pytest.mark.parametrize(
    "file_name, content, lang",
    [
        ("probe.wasm", WASM, "wasm"),
        ("probe.wat", WAT.encode(), "wat"),
        ("probe.wast", WAT.encode(), "wat"),
        ("prog.c", b"int main(void) { return 0; }\n", "c"),
        ("defs.h", b"#define N 3\n", "c"),
        ("script.py", b"print('hi')\n", "python"),
        ("noext", b"print('hi')\n", "python"),
    ],
)
def test_paths_are_detected_by_suffix_then_content(tmp_path: Path, file_name: str, content: bytes, lang: str) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    loaded = load_module_source(path)
    assert loaded.lang == lang
    assert loaded.name == path.stem and loaded.path == path


def test_an_explicit_lang_wins_over_detection() -> None:
    assert load_module_source("int main(void) { return 0; }", "python").lang == "python"


def test_a_file_name_given_as_text_says_to_pass_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "job.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModuleError) as caught:
        load_module_source("job.py")
    assert "pathlib.Path('job.py')" in str(caught.value)


def test_nothing_recognisable_lists_the_languages() -> None:
    with pytest.raises(ModuleError) as caught:
        load_module_source(b"\x00\x01\xff\xfe not text")
    assert "lang=" in str(caught.value) and "python" in str(caught.value)


def test_a_typo_in_lang_suggests_the_nearest() -> None:
    with pytest.raises(ModuleError, match="did you mean 'python'"):
        load_module_source("print(1)", "pyhton")


def test_detected_sources_run_end_to_end() -> None:
    from workbench import Sandbox

    # (Python detected end to end: tests/test_lang_python.py, which owns the interpreter's compile)
    assert Sandbox().run('#include <stdio.h>\nint main(void) { puts("from c"); return 0; }\n').stdout == "from c\n"
    assert Sandbox().run(WASM).stdout == "hi\n"


def test_guess_warning_names_the_callers_line_not_ours() -> None:
    """The warning points at the user's ``run(...)``, never at ``workbench/runtime/sandbox.py``."""
    from workbench import Sandbox

    with pytest.warns(LanguageGuessWarning) as record:
        Sandbox(["time:limit:5s"]).run("# nothing here\n")
    assert record[0].filename == __file__, record[0].filename

