"""The guest's WASI configuration for one run: argv, environment, stdin, streams and preopens.

Why a module of its own: a run (:mod:`.run`) and a live instance (:mod:`.live`) build the same
configuration, and the environment's names (never its values) are recorded the same way.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import wasmtime

from ..languages import Program
from .output import OutputCapture
from .wasi_streams import OutputStreams, set_stdin

__all__ = ["wasi_config"]


def wasi_config(
    program: Program,
    environment: Iterable[tuple[str, str]],
    expose: Callable[[str], object],
    streams: OutputStreams,
    output: OutputCapture,
    preopens: list[tuple[str, str, bool]],
    args: Sequence[str],
    stdin: str | bytes | None,
    env: Mapping[str, str] | None,
) -> tuple[wasmtime.WasiConfig, tuple[tuple[str, str], ...]]:
    """The configuration, and the environment the guest gets (``expose`` is told each name)."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = [*program.argv, *map(str, args)]
    variables = dict(program.env)
    variables.update(environment)
    if env:
        variables.update({str(k): str(v) for k, v in env.items()})
    if variables:  # a WasiConfig starts with an empty environment
        wasi.env = list(variables.items())
    for name in sorted(variables):
        expose(name)  # names only, never values
    if stdin is None:
        stdin = program.stdin
    if stdin is not None:
        set_stdin(wasi, stdin.encode("utf-8") if isinstance(stdin, str) else bytes(stdin))
    streams.attach(wasi, output.writer("stdout"), output.writer("stderr"))
    for guest, host, writable in preopens:
        wasi.preopen_dir(host, guest, writable)
    return wasi, tuple(variables.items())
