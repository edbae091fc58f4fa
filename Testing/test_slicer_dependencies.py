"""The packages the Slicer modules install on first use are exactly the package's dependencies."""

import pytest
from conftest import REPO

from CovidCTDetectLib.dependencies import REQUIREMENTS, missing_requirements

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")


def test_requirements_are_pyprojects_dependencies():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert sorted(REQUIREMENTS.values()) == sorted(pyproject["project"]["dependencies"])


def test_nothing_is_missing_where_covidct_is_installed():
    assert missing_requirements() == []
