"""``lang="c"``: C compiled to wasm32-wasi with zig's clang (PyPI ``ziglang``, the optional ``c`` extra).

Defaults (``COptions``): ``-O2`` and wasm SIMD (``-msimd128``, 1.0-1.5× faster on
this machine, design.md §5) for speed, and ``-g`` so a trap's backtrace names the
function and ``file.c:line`` (the runtime reads the DWARF when ``Program.debug_info``
is set).

Compiler diagnostics come back as ``file.c:LINE:COL: error: message`` lines, the
first error's line in :attr:`CompileError.line`.  Compiled modules are kept in
``<cache dir>/c/`` by a hash of the source, options and compiler version, so
running the same source again, in any process, does not start zig.  The source is
compiled in a folder named by that hash, so the DWARF (and the module's sha256) is
the same every time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..builtin_catalog import BUILTIN_EXTENSIONS
from ..errors import CompileError, ModuleError
from .messages import source_text
from .progress import step_progress

__all__ = ["COptions", "DEFAULT_OPTIONS", "compile", "compile_c", "zig_path", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'sandbox-workbench[c]'   (or: pip install ziglang==0.17.1)"
COMPILE_TIMEOUT_SECONDS = 300  # the very first compile also builds wasi-libc (~25 s on 2 cores)

_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\s][^:]*):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|fatal error|warning): (?P<msg>.*)$")
_LINKER = re.compile(r"^wasm-ld: error: (?:\S+\.o: )?(?P<msg>.*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class COptions:
    """How C is compiled.  ``extra`` flags go last (e.g. ``("-DN=10", "-lm")``)."""

    optimize: str = "-O2"
    debug: bool = True
    simd: bool = True
    extra: tuple[str, ...] = field(default=())

    def flags(self) -> list[str]:
        flags = ["--target=wasm32-wasi", self.optimize]
        if self.debug:
            flags.append("-g")
        if self.simd:
            flags.append("-msimd128")
        return [*flags, *self.extra]


DEFAULT_OPTIONS = COptions()
#: ``#include "workbench.h"``: the guest helpers for /dev/workbench and the host imports (extensions/include)
GUEST_INCLUDE = BUILTIN_EXTENSIONS / "include"


@functools.lru_cache(maxsize=1)
def zig_path() -> Path:
    """The zig binary inside the ``ziglang`` package, or a ModuleError naming the install command."""
    try:
        import ziglang  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ModuleError("lang='c' needs the C compiler (zig), an optional extra of about 100 MB",
                          hint=INSTALL_HINT) from exc
    binary = Path(ziglang.__file__).parent / ("zig.exe" if os.name == "nt" else "zig")
    if not binary.is_file():
        raise ModuleError(f"the ziglang package has no zig binary at {binary}", hint=INSTALL_HINT)
    return binary


@functools.lru_cache(maxsize=1)
def _zig_version() -> str:
    try:
        from importlib.metadata import version

        return version("ziglang")
    except Exception:
        return "unknown"


def _cache_dir() -> Path:
    from ..runtime.cache import default_cache_dir  # lazily: runtime imports this package

    return default_cache_dir() / "c"


def _private(folder: Path) -> bool:
    """Create ``folder`` (0700) and say whether only this user can write to it."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = folder.stat()
    except OSError:
        return False
    return not (info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) and info.st_uid == os.getuid()


def _file_name(name: str) -> str:
    stem = _SAFE_NAME.sub("_", name).strip("._") or "main"
    return stem if stem.endswith(".c") else f"{stem}.c"


def _explain(stderr: str, file_name: str, source: str) -> CompileError:
    """clang/wasm-ld output as ``file:line: message`` lines; the first error's line and column."""
    lines: list[str] = []
    first: tuple[int, int] | None = None
    errors = 0
    for raw in stderr.splitlines():
        diagnostic = _DIAGNOSTIC.match(raw)
        if diagnostic and "error" in diagnostic.group("kind"):
            line, col = int(diagnostic.group("line")), int(diagnostic.group("col"))
            first = first or (line, col)
            errors += 1
            lines.append(f"{Path(diagnostic.group('file')).name}:{line}: {diagnostic.group('msg')}")
            continue
        linker = _LINKER.match(raw)
        if linker:
            errors += 1
            lines.append(f"link: {linker.group('msg')}")
    if not lines:  # something else went wrong: keep the tool's own words, without the noise
        lines = [line for line in stderr.strip().splitlines() if line.strip()][:5] or ["the C compiler failed"]
    hint = None
    if any("undefined symbol: main" in line or "undefined symbol: __main_argc_argv" in line for line in lines):
        hint = "a C guest is a program: give it int main(void) or int main(int argc, char **argv)"
    elif any(line.startswith("link: undefined symbol") for line in lines):
        hint = "only the C standard library (wasi-libc) is linked; define the function or drop the call"
    elif first is not None:
        source_lines = source.splitlines()
        if 0 < first[0] <= len(source_lines):
            hint = f"line {first[0]}: {source_lines[first[0] - 1].strip()}"
    summary = f"C compile failed ({errors} error{'s' if errors != 1 else ''}):\n  " + "\n  ".join(lines)
    return CompileError(summary, line=first[0] if first else None, column=first[1] if first else None, hint=hint)


#: seconds the first C compile on a machine takes (zig builds its WASI libc once): 25-40 s on two cores
FIRST_COMPILE_SECONDS = 30.0


def zig_global_cache() -> Path:
    """zig's global cache folder (where it keeps the libc it built), as zig finds it."""
    if os.environ.get("ZIG_GLOBAL_CACHE_DIR"):
        return Path(os.environ["ZIG_GLOBAL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zig"


def zig_libc_cached(cache: Path | None = None) -> bool:
    """Has zig built its wasm32-wasi libc on this machine already?  (Then a compile takes ~1 s,
    else 25-40 s: the progress display says which to expect.)"""
    objects = (cache or zig_global_cache()) / "o"
    try:
        return any(objects.glob("*/__wasilibc_initialize_environ.o"))
    except OSError:
        return False


def compile_c(source: str | bytes, name: str = "main", options: COptions = DEFAULT_OPTIONS) -> bytes:
    """Compile C ``source`` to a wasm32-wasi module (from the on-disk cache when seen before)."""
    source = source_text(source, "C")
    zig = zig_path()
    file_name = _file_name(name)
    flags = options.flags()
    if "workbench.h" in source:  # the guest helpers (extensions/include): their text is part of the key
        flags = [*flags, f"-I{GUEST_INCLUDE}"]
        source_key = source + "\0" + hashlib.sha256((GUEST_INCLUDE / "workbench.h").read_bytes()).hexdigest()
    else:
        source_key = source
    key = hashlib.sha256("\0".join(["c-v1", _zig_version(), file_name, *flags, source_key]).encode()).hexdigest()
    root = _cache_dir()
    cached = root / f"{key}.wasm"
    if cached.is_file():
        return cached.read_bytes()
    usable = _private(root)
    work = root / key if usable else Path(tempfile.mkdtemp(prefix="workbench-c-"))
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    (work / file_name).write_text(source, encoding="utf-8")
    warm = zig_libc_cached()
    label = f"compiling {file_name} with zig" + ("" if warm else " (the first C compile also builds zig's WASI libc)")
    try:
        with step_progress(label, 2.0 if warm else FIRST_COMPILE_SECONDS):
            proc = subprocess.run(
                [str(zig), "cc", *flags, file_name, "-o", "module.wasm"],
                cwd=work, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_SECONDS,
            )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"the C compiler did not finish within {COMPILE_TIMEOUT_SECONDS} s",
                           hint="simplify the program or compile it yourself and run the .wasm") from exc
    if proc.returncode != 0:
        raise _explain(proc.stderr, file_name, source)
    wasm = (work / "module.wasm").read_bytes()
    if usable:
        os.replace(work / "module.wasm", cached)  # atomic: a reader sees all of it or nothing
    return wasm


def compile(source: str | bytes, name: str = "main") -> bytes:  # noqa: A001 - the adapter interface
    """The registry's adapter: :func:`compile_c` with the default options."""
    return compile_c(source, name)


def export_stack_pointer(wasm: bytes) -> bytes:
    """``wasm`` with its ``__stack_pointer`` global exported under that name (wasm-ld never exports it),
    so the host can read it after a run; only the export section changes."""
    from ..runtime.wasm_facts import facts_of
    from .wasm_binary import add_global_export

    facts = facts_of(wasm)
    for fact in facts.globals:
        if fact.name == "__stack_pointer" and not fact.exported:
            try:
                return add_global_export(wasm, fact.index, "__stack_pointer")
            except ValueError:
                return wasm
    return wasm
