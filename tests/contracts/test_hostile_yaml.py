"""Hostile contract files: alias bombs, deep nesting, recursion and huge files are refused fast.

Before the safe loader, the 658-byte bomb below kept ``dativo contract lint`` busy for minutes and
took gigabytes (the line-mapping step walked every expanded alias); the recursive and deep ones ended
as "internal error" lines. Each child process here runs under an address-space limit, so a
regression fails the test instead of exhausting the machine.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dativo_provider import safe_yaml
from dativo_provider.contracts import ContractError, lint, load_contract

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 2 * 1024**3  # bytes of address space for a child: a bomb that expands dies quickly

HEADER = """apiVersion: v3.1.0
kind: DataContract
id: urn:test:bomb
version: 1.0.0
status: active
team:
  name: t
schema:
  - name: t
    properties:
      - name: id
        logicalType: integer
customProperties:
  - property: vendorNotes
    value:
"""


def alias_bomb(levels: int = 9) -> str:
    """Nine levels of nine aliases: 9**9 (387 million) strings once expanded, in a 725-byte contract."""
    lines = ['      l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"      l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return HEADER + "\n".join(lines) + "\n"


def deep_alias_bomb(levels: int = 40) -> str:
    """Forty levels of mappings and sequences, each holding its predecessor twice: 2**40 nodes from
    80 aliases, so the alias *count* stays under its limit and only the expansion bound can stop it."""
    lines = ["      n0: &n0 {k: [v]}"]
    for level in range(1, levels):
        inner = f"{{a: *n{level - 1}, b: [*n{level - 1}]}}" if level % 2 else f"[*n{level - 1}, {{c: *n{level - 1}}}]"
        lines.append(f"      n{level}: &n{level} {inner}")
    return HEADER + "\n".join(lines) + "\n"


def merge_key_bomb(levels: int = 30) -> str:
    """Merge keys (``<<``) copy mappings when constructed: the same exponential growth."""
    lines = ["      m0: &m0 {x0: 1, y0: 2}"]
    for level in range(1, levels):
        lines.append(f"      m{level}: &m{level} {{<<: [*m{level - 1}], z{level}: [*m{level - 1}, *m{level - 1}]}}")
    return HEADER + "\n".join(lines) + "\n"


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_lint_child(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    """``dativo contract lint path`` as a user runs it, in a child under MEMORY_CAP; and its wall time."""
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "dativo_provider.cli", "contract", "lint", str(path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, preexec_fn=cap_memory,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"lint of {path.name} still running after 60 s") from None
    return done, time.monotonic() - start


def run_python_child(code: str, path: Path) -> str:
    """Run ``code`` with ``path`` as argv[1] in a child under MEMORY_CAP and a timeout: its stdout.

    Hostile input never reaches the pytest process itself: a regression must fail, not hang it."""
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              cwd=ROOT, timeout=60, preexec_fn=cap_memory, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{path.name} still being read after 60 s") from None
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def measured_lint(path: Path) -> tuple[str, float, int]:
    """Lint ``path`` in a child that reports its own wall time for ``lint()`` and its peak RSS."""
    code = (
        "import sys, time\n"
        "from dativo_provider.contracts import lint\n"
        "start = time.monotonic()\n"
        "issues = lint([sys.argv[1]])\n"
        "took = time.monotonic() - start\n"
        "print('\\n'.join(str(i) for i in issues))\n"
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child forked from a big pytest
        # process would report the parent's size.
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
        "print(f'{took:.4f} {hwm}')\n"
    )
    *issues, last = run_python_child(code, path).splitlines()
    took, max_rss_kib = last.split()
    return "\n".join(issues), float(took), int(max_rss_kib) * 1024


@pytest.mark.parametrize(
    ("builder", "line", "fragment"),
    [
        (alias_bomb, 20, "YAML aliases expand to more than 10,000 nodes"),
        (deep_alias_bomb, 26, "YAML aliases expand to more than 10,000 nodes"),
        (merge_key_bomb, 23, "YAML aliases expand to more than 10,000 nodes"),
    ],
    ids=["alias_bomb", "deep_alias_bomb", "merge_key_bomb"],
)
def test_alias_bombs_are_refused_in_under_a_second_with_bounded_memory(tmp_path, builder, line, fragment):
    path = tmp_path / "bomb.yaml"
    path.write_text(builder())
    assert path.stat().st_size < 2048
    issues, took, max_rss = measured_lint(path)
    # Under a second on this machine (0.0x s); the bound leaves room for a busy CI host, and a hang
    # (the old loader ran for minutes) still fails it.
    assert took < 5.0, f"lint took {took:.2f} s"
    assert max_rss < 300 * 1024**2, f"peak RSS {max_rss / 1024**2:.0f} MiB"
    assert issues == f"{path}:{line}: (document): refused: {fragment} (an alias bomb?); a contract must " \
                     "stay within 1,000,000 characters, 100,000 nodes, 64 levels of nesting and 100 aliases " \
                     "(*name) adding at most 10,000 nodes"


def test_the_cli_rejects_the_bomb_with_exit_1_and_one_clear_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    result, elapsed = run_lint_child(path)
    assert result.returncode == 1, result.stderr
    assert elapsed < 10, f"the CLI took {elapsed:.1f} s (interpreter start included)"
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{path}:20: (document): refused: YAML aliases expand to more than 10,000 nodes")
    assert "Traceback" not in result.stderr and "internal error" not in result.stdout
    assert "1 error(s) in 1 file(s)" in result.stderr


def test_load_contract_refuses_the_bomb_too_so_every_operator_does(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    code = (
        "import sys, time\n"
        "from dativo_provider.contracts import ContractError, load_contract\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    load_contract(sys.argv[1])\n"
        "except ContractError as exc:\n"
        "    print(f'{time.monotonic() - start:.4f}', exc.issues[0].message)\n"
    )
    took, message = run_python_child(code, path).split(" ", 1)
    assert float(took) < 1.0
    assert message.startswith("refused: YAML aliases expand to more than 10,000 nodes")


@pytest.mark.parametrize(
    ("value", "line", "fragment"),
    [
        ("[" * 5000 + "]" * 5000, 15, "refused: nesting deeper than 64 levels"),
        ("{a: " * 70 + "1" + "}" * 70, 15, "refused: nesting deeper than 64 levels"),
        ("&loop [x, *loop]", 15, "refused: a YAML alias refers to a node that contains it"),
        (" ".join(f"&a{i} [1]" for i in range(1)) + "\n" + "\n".join(f"      k{i}: *a0" for i in range(101)),
         117, "refused: more than 100 YAML aliases"),
    ],
    ids=["deep_sequences", "deep_mappings", "recursive_alias", "too_many_aliases"],
)
def test_deep_recursive_and_alias_heavy_documents_are_refused_with_their_line(tmp_path, value, line, fragment):
    path = tmp_path / "hostile.yaml"
    if "\n" in value:  # a mapping of many keys: the first holds the anchor
        first, rest = value.split("\n", 1)
        value = f"\n      k: {first}\n{rest}"
    path.write_text(HEADER.replace("    value:\n", f"    value: {value}\n"))
    start = time.monotonic()
    issues = lint([path])
    assert time.monotonic() - start < 1.0
    assert [(i.line, i.path) for i in issues] == [(line, "(document)")], [str(i) for i in issues]
    assert fragment in issues[0].message


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(HEADER + "      notes: |\n" + ("        " + "x" * 90 + "\n") * 11_000)
    (issue,) = lint([path])
    assert issue.line == 1
    assert "refused: the YAML is 1,0" in issue.message and "the limit is 1,000,000" in issue.message


def test_a_file_of_too_many_values_is_refused_before_it_is_built(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text(HEADER + "      x: [" + ",".join(["1"] * 490_000) + "]\n")  # under 1 MB
    issues, took, max_rss = measured_lint(path)
    assert issues.startswith(f"{path}:16: (document): refused: more than 100,000 YAML nodes")
    assert took < 5.0 and max_rss < 300 * 1024**2


def test_anchors_within_the_limits_still_work_and_keep_their_lines(tmp_path):
    path = tmp_path / "shared.yaml"
    path.write_text(
        HEADER.replace("customProperties:\n  - property: vendorNotes\n    value:\n", "")
        + "        quality:\n"
          "          - &present {name: id_present, metric: nullValues, mustBe: 0}\n"
          "      - name: other_id\n"
          "        logicalType: integer\n"
          "        quality:\n"
          "          - {<<: *present, name: other_present}\n"
          "          - {<<: *present, name: other_bad, severity: fatal}\n"
    )
    issues = lint([path])
    assert [(i.line, i.path, i.message) for i in issues] == [
        (19, "schema[0].properties[1].quality[1].severity",
         "'fatal' is not allowed; expected 'error' or 'warning'"),
    ]
    path.write_text(path.read_text().replace("severity: fatal", "severity: warning"))
    contract = load_contract(path)
    assert [(r.name, r.column) for r in contract.rules] == [
        ("id_present", "id"), ("other_present", "other_id"), ("other_bad", "other_id")]


def test_the_limits_are_one_object_used_by_the_contract_loader():
    assert safe_yaml.ContractYamlLoader.limits is safe_yaml.DEFAULT_LIMITS
    with pytest.raises(safe_yaml.YamlLimitError, match="more than 3 YAML aliases"):
        class Tight(safe_yaml.SafeYamlLoader):
            limits = safe_yaml.YamlLimits(max_aliases=3)

        safe_yaml.load("a: &a 1\nb: [*a, *a, *a, *a]\n", Tight)


def test_no_module_reads_yaml_around_the_safe_loader():
    """Contracts, hand-written Soda contracts and front matter are users' files: all go through safe_yaml."""
    reader = re.compile(r"(?<![\w.])yaml\.(?:safe_load|load|full_load|unsafe_load|compose|parse)(?:_all)?\(")
    offenders = [
        f"{path.relative_to(ROOT)}: {found}"
        for path in sorted((ROOT / "dativo_provider").rglob("*.py"))
        if path.name != "safe_yaml.py"
        for found in reader.findall(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert reader.findall("x = yaml.safe_load(text)") and not reader.findall("safe_yaml.compose(text)")
