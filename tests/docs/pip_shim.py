"""The ``pip`` that doc commands find on PATH: it checks an install line instead of installing.

``pip install ...dativo-airflow-provider[extras]...`` passes when every extra is declared in
pyproject.toml and pip, with ``--dry-run --no-index``, resolves the line against this virtualenv (the
provider's own dependencies are installed here). A constraints URL (GitHub's Airflow constraints,
unreachable here) is replaced by the repository's pinned set for the running Airflow. Any other pip
command is passed to the real pip.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = re.compile(r"^dativo[-_]airflow[-_]provider(?:\[([^\]]*)\])?", re.I)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "install":
        return subprocess.call([sys.executable, "-m", "pip", *argv])
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    args, problems = [], []
    for previous, arg in zip(["", *argv[1:]], argv[1:]):
        if previous in ("-c", "--constraint") and re.match(r"https?://", arg):
            arg = str(_pinned_constraints())
        match = OURS.match(arg)
        if match and match.group(1):
            problems += [f"dativo-airflow-provider has no extra {extra!r} (declared: {sorted(declared)})"
                         for extra in re.split(r"\s*,\s*", match.group(1).strip()) if extra not in declared]
        args.append(arg)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", *args],
                          capture_output=True, text=True)
    print(done.stdout + done.stderr, end="")
    if "does not provide the extra" in done.stderr:
        return 1
    return done.returncode


def _pinned_constraints() -> Path:
    from importlib.metadata import version

    major_minor = ".".join(version("apache-airflow").split(".")[:2])
    return REPO / "constraints" / f"airflow-{major_minor}.txt"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
