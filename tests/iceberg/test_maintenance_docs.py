"""The Python example of docs/maintenance.md runs as written and prints what the page says."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "maintenance.md"


def test_the_python_example_runs_and_prints_what_the_page_says(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (example,) = [b for b in blocks if "maintain_table(" in b]
    exec(compile(example.replace("/tmp/dativo-maintenance-demo", str(tmp_path / "demo")), str(DOC), "exec"), {})

    # The example's own line is the last: earlier tests may have left a log handler writing to stdout.
    compacted, expired, data_removed, reclaimed = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert (compacted, expired, data_removed) == ("6", "6", "6") and int(reclaimed) > 0
    assert "It prints `6 6 6 <bytes>`" in DOC.read_text()
