"""pyproject.toml is read without a deprecation warning by the setuptools that builds it.

``make demo`` and ``make test`` install the project; a setuptools warning there (``project.license``
as a TOML table is deprecated, printed three times per install) is the first thing a newcomer sees.
"""

from __future__ import annotations

import re
import tomllib
import warnings
from pathlib import Path

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
