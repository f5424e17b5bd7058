"""C guests: compiled with zig to wasm32-wasi, with debug info, and run like any module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workbench import CompileError, ModuleError, Sandbox
from workbench.languages import c as cadapter
from workbench.languages import registry

CAT = r"""#include <stdio.h>

int main(int argc, char **argv) {
    FILE *f = fopen(argc > 1 ? argv[1] : "/docs/readme.txt", "r");
    if (!f) { perror("fopen"); return 2; }
    char line[256];
    while (fgets(line, sizeof line, f)) fputs(line, stdout);
    fclose(f);
    return 0;
}
"""

TRAP = r"""#include <stdio.h>

int checked_divide(int a, int b) {
    if (b == 0)
        __builtin_trap();
    return a / b;
}

int main(void) {
    volatile int zero = 0;
    printf("%d\n", checked_divide(1, zero));
    return 0;
}
"""


@pytest.fixture(scope="session", autouse=True)
def zig_warm() -> None:
    """The first zig compile on a machine also builds wasi-libc (~25 s): do it once, up front."""
    cadapter.compile_c("int main(void) { return 0; }\n", "warm")


def clear_memos() -> None:
    registry._prepare_memo.cache_clear()
    registry.compile_to_wasm.cache_clear()


def test_a_program_reads_a_granted_file(workspace: Path) -> None:
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(CAT, lang="c", name="cat")
    assert result.ok, result.stderr
    assert result.stdout == "public notes\n"


def test_files_outside_the_grant_stay_closed(workspace: Path) -> None:
    result = Sandbox(["filesystem:read:/docs"], root=workspace).run(CAT, lang="c", name="cat", args=["/secret.txt"])
    assert result.exit_code == 2
    assert "TOP-SECRET" not in result.stdout
    assert "fopen" in result.stderr
    assert [v.kind for v in result.violations] == ["filesystem"]


def test_a_trap_names_the_function_and_source_line() -> None:
    result = Sandbox().run(TRAP, lang="c", name="divide")
    assert result.fault is not None and result.fault.kind == "unreachable"
    assert "divide.c:" in result.fault.message
    assert "checked_divide" in result.fault.message
    line = int(result.fault.message.split("divide.c:")[1].split(":")[0])
    assert line in (4, 5, 11)  # the check, the trap, or the call site (inlined at -O2)
    assert any("divide.c:" in frame for frame in result.fault.backtrace)


def test_a_compile_error_gives_file_and_line() -> None:
    source = "#include <stdio.h>\nint main(void) {\n  int x = 1\n  return x;\n}\n"
    with pytest.raises(CompileError) as caught:
        Sandbox().run(source, lang="c", name="broken")
    error = caught.value
    assert error.line == 3 and error.column == 12
    assert "broken.c:3: expected ';' at end of declaration" in str(error)
    assert "clang" not in str(error) and "/" not in str(error).split("\n")[1]  # no paths, no tool noise


def test_a_link_error_says_what_is_missing() -> None:
    with pytest.raises(CompileError) as caught:
        Sandbox().run("int helper(void);\nint main(void) { return helper(); }\n", lang="c")
    assert "undefined symbol: helper" in str(caught.value)
    assert caught.value.hint and "wasi-libc" in caught.value.hint


def test_a_rerun_does_not_invoke_zig(monkeypatch: pytest.MonkeyPatch) -> None:
    source = '#include <stdio.h>\nint main(void) { puts("cached"); return 0; }\n'
    assert Sandbox().run(source, lang="c").stdout == "cached\n"
    clear_memos()  # as a new process would: only the on-disk cache is left

    def no_zig(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("zig was started again")

    monkeypatch.setattr(cadapter.subprocess, "run", no_zig)
    assert Sandbox().run(source, lang="c").stdout == "cached\n"


def test_args_stdin_and_exit_code() -> None:
    source = r"""#include <stdio.h>
int main(int argc, char **argv) {
    char buf[64];
    if (fgets(buf, sizeof buf, stdin)) printf("stdin: %s", buf);
    for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
    return 7;
}
"""
    result = Sandbox().run(source, lang="c", args=["x", "y z"], stdin="hello\n")
    assert result.exit_code == 7
    assert result.stdout.splitlines() == ["stdin: hello", "arg: x", "arg: y z"]


def test_limits_apply_to_c_guests() -> None:
    spin = "int main(void) { volatile unsigned long n = 0; for (;;) n++; }\n"
    timed = Sandbox(["time:limit:0.3s"]).run(spin, lang="c")
    assert [v.kind for v in timed.violations] == ["time"]
    fueled = Sandbox(["fuel:limit:1e6"]).run(spin, lang="c")
    assert [v.kind for v in fueled.violations] == ["fuel"]


def test_default_flags_are_optimised_with_debug_info_and_simd() -> None:
    flags = cadapter.DEFAULT_OPTIONS.flags()
    assert flags[:1] == ["--target=wasm32-wasi"]
    assert {"-O2", "-g", "-msimd128"} <= set(flags)
    program = registry.prepare_program("c", "int main(void) { return 0; }\n", "flags")
    assert program.debug_info is True


def test_missing_compiler_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    cadapter.zig_path.cache_clear()
    monkeypatch.setitem(sys.modules, "ziglang", None)
    try:
        with pytest.raises(ModuleError) as caught:
            cadapter.compile_c("int main(void) { return 1; }\n", "nozig")
        assert "pip install 'sandbox-workbench[c]'" in str(caught.value)
    finally:
        cadapter.zig_path.cache_clear()


def test_c_file_path_is_detected_and_named(tmp_path: Path) -> None:
    path = tmp_path / "hello.c"
    path.write_text('#include <stdio.h>\nint main(void) { puts("from a file"); return 0; }\n')
    result = Sandbox().run(path)
    assert result.module == "hello" and result.stdout == "from a file\n"


def test_zig_is_the_pinned_version() -> None:
    proc = subprocess.run([str(cadapter.zig_path()), "version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "0.17.1"
