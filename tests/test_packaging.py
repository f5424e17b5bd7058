"""Packaging: pyproject.toml reads without deprecation warnings, and a wheel carries the catalog.

``make demo`` and ``make test`` install the project; a setuptools warning there (``project.license``
as a TOML table is deprecated, printed three times per install) is the first thing a newcomer sees.
A wheel (``pip install sandbox-workbench``, not editable) must find the built-in catalog
(``extensions/``) without the repository beside it: the build copies it into the package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_reads_without_deprecation_warnings() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SetuptoolsDeprecationWarning included
        dist = apply_configuration(Distribution(), REPO / "pyproject.toml")
    assert dist.get_name() == "sandbox-workbench"


def test_build_backend_is_new_enough_for_the_license_expression() -> None:
    """A build with an older setuptools (which pip's isolated build would pick) rejects the SPDX string."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(config["project"]["license"], str)
    (requirement,) = [r for r in config["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.search(r">=(\d+)", requirement).group(1)) >= 77  # type: ignore[union-attr]


# -- the wheel carries the built-in catalog (extensions/) ------------------------------------------
BUILTIN_MODULES = {"adversary", "fetcher", "parser", "pipeline", "wordcount"}


def _source_copy(into: Path) -> Path:
    """The repository's files as git sees them (tracked, and new ones not ignored): a clean tree to build."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the repository, as ``pip wheel`` builds one (no network: the
    build backend is the installed setuptools)."""
    source = _source_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("sandbox_workbench-*.whl")
    return built


def test_the_wheel_holds_the_catalog(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in BUILTIN_MODULES:
        assert f"workbench/extensions/{module}/manifest.toml" in names
        assert f"workbench/extensions/{module}/main.py" in names
    assert "workbench/extensions/include/workbench.h" in names
    assert not any("__pycache__" in name for name in names if name.startswith("workbench/extensions/"))


def test_installed_from_the_wheel_outside_the_repository_the_catalog_lists_the_builtin_modules(
        wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("WORKBENCH_EXTENSIONS", None)
    probe = ("import json, workbench, workbench.languages.c as c\n"
             "from workbench.modules import default_catalog\n"
             "from workbench.modules.catalog import BUILTIN\n"
             "print(json.dumps([workbench.__file__, str(BUILTIN), str(c.GUEST_INCLUDE), default_catalog().names()]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    package, builtin, include, names = json.loads(done.stdout.splitlines()[-1])
    assert Path(package).is_relative_to(site)  # the wheel's copy, not the repository's editable install
    assert Path(builtin) == site / "workbench" / "extensions" and (Path(include) / "workbench.h").is_file()
    assert BUILTIN_MODULES <= set(names)
    listed = subprocess.run([sys.executable, "-c", "import sys; from workbench.cli import main; "
                             "sys.exit(main(['modules', 'list']))"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in BUILTIN_MODULES), listed.stdout


def test_a_checkout_reads_the_repositorys_own_catalog(tmp_path: Path) -> None:
    from workbench.builtin_catalog import builtin_extensions

    package = tmp_path / "repo" / "workbench"
    package.mkdir(parents=True)
    assert builtin_extensions(package) == tmp_path / "repo" / "extensions"  # no copy inside: the checkout's
    (package / "extensions" / "include").mkdir(parents=True)
    assert builtin_extensions(package) == package / "extensions"  # a wheel's copy wins
