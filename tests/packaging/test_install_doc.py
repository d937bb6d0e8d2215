"""docs/install.md is the one list of the package's extras: it must name exactly those pyproject.toml
declares, and no development tool may be published as an extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _extras_in_the_table() -> set[str]:
    """The first column of the table under '## The default install and the extras'."""
    text = (ROOT / "docs" / "install.md").read_text()
    section = text.split("## The default install and the extras", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))


def test_the_install_page_lists_every_extra_and_only_those():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = set(project["project"]["optional-dependencies"])
    assert _extras_in_the_table() == declared
    assert not declared & {"test", "bench", "dev", "docs"}
    assert {"test", "bench"} <= set(project["dependency-groups"])
