"""Find the fenced code blocks of Markdown pages and run them the way a reader would.

Every block of one page runs in order in one workspace: a temporary directory (the working directory,
holding a copy of the repository's ``contracts/``) with its own embedded catalog (``DATIVO_HOME``),
so a later block may use what an earlier one made, as a reader following the page would.

| fence | what is done |
|---|---|
| ``python`` | a block that defines a DAG is written to the DAGs folder, parsed as the scheduler does and run with ``dag.test()`` (every task must succeed); any other block runs in the page's one Python process (a shared namespace, like a notebook) |
| ``bash``, ``sh``, ``shell`` | the block runs as a ``bash -euo pipefail`` script and must exit 0; each ``AIRFLOW_CONN_*`` it assigns must be a connection Airflow accepts, of a registered type |
| ``console`` | each ``$ command`` runs; the lines shown after it must be its output (stdout and stderr; ``...`` matches anything), and a command shown without output must exit 0. A console block with no ``$`` prompt is a script, as ``bash`` |
| ``yaml`` | parsed; a contract (``kind: DataContract``) must pass ``dativo contract lint`` |
| ``json`` | parsed |
| none, ``text``, ``markdown`` | shown, not run (output, diagrams, documents a source reads) |

Two HTML comments right before a fence change that: ``<!-- file: PATH -->`` writes the block to PATH in
the workspace instead (e.g. a broken contract that a later command lints), and
``<!-- not-run: REASON -->`` leaves it out; the test lists every such reason.

Commands find the virtualenv's ``airflow``, ``dativo`` and ``python`` first on ``PATH``, and a ``pip`` that
checks an install line instead of installing (see ``pip_shim.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = {"python", "bash", "sh", "shell", "console", "yaml", "json"}
SHOWN = {"", "text", "markdown"}
BLOCK_TIMEOUT = 300
_DAG = re.compile(r"^\s*(with\s+DAG\(|@dag\b)", re.M)
_MARKER = re.compile(r"<!--\s*(not-run|file):\s*(.*?)\s*-->", re.S)
_CONN_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?(AIRFLOW_CONN_\w+)=", re.M)


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and the markers before it."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def test_id(self) -> str:
        try:
            name = self.page.relative_to(REPO)
        except ValueError:
            name = self.page.name
        return f"{name}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, in order, with the markers in the HTML comment before it."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(page.read_text())
    blocks = []
    for previous, token in zip([None, *tokens], tokens):
        if token.type != "fence":
            continue
        markers = {}
        if previous is not None and previous.type == "html_block":
            markers = {kind: value for kind, value in _MARKER.findall(previous.content)}
        language = token.info.split()[0].lower() if token.info.strip() else ""
        blocks.append(Block(page, token.map[0] + 1, language, token.content, markers))
    return blocks


@dataclass
class Outcome:
    ok: bool
    detail: str = ""


class PageSession:
    """The workspace, environment and Python process in which one page's blocks run, in order."""

    def __init__(self, page: Path, root: Path, env: dict[str, str], kernel: Kernel,
                 blocks: list[Block] | None = None) -> None:
        """:param blocks: the page's blocks as collected (default: read the page now)."""
        self.page = page
        self.blocks = [b for b in (blocks if blocks is not None else blocks_of(page))
                       if "not-run" not in b.markers and b.language not in SHOWN]
        self.workspace = root / re.sub(r"\W", "_", str(page.relative_to(REPO) if page.is_relative_to(REPO) else page))
        self.workspace.mkdir(parents=True)
        shutil.copytree(REPO / "contracts", self.workspace / "contracts", symlinks=False)
        self.env = {**env, "DATIVO_HOME": str(self.workspace / "dativo")}
        self.outcomes: dict[int, Outcome] = {}
        self.kernel = kernel

    # -- running -------------------------------------------------------------------------------------

    def outcome(self, block: Block) -> Outcome:
        """Run the page's blocks up to and including ``block`` (each once), and return its outcome."""
        for earlier in self.blocks[: self.blocks.index(block) + 1]:
            if earlier.line not in self.outcomes:
                self.outcomes[earlier.line] = self._run(earlier)
        return self.outcomes[block.line]

    def _run(self, block: Block) -> Outcome:
        if "file" in block.markers:
            target = self.workspace / block.markers["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            return Outcome(True, f"written to {target}")
        if block.language == "python":
            return self._python(block)
        if block.language == "console" and re.search(r"^\$ ", block.text, re.M):
            return self._console(block)
        if block.language in {"bash", "sh", "shell", "console"}:
            return self._script(block)
        if block.language == "yaml":
            return self._yaml(block)
        if block.language == "json":
            try:
                json.loads(block.text)
            except ValueError as exc:
                return Outcome(False, f"not JSON: {exc}")
            return Outcome(True)
        return Outcome(False, f"no rule to run a ```{block.language} block: add one, or mark it not-run")

    def _python(self, block: Block) -> Outcome:
        if _DAG.search(block.text):
            path = Path(self.env["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{self.workspace.name}_{block.line}.py"
            path.write_text(block.text)
            return self._ask({"op": "dag", "path": str(path)})
        return self._ask({"op": "exec", "code": block.text, "filename": block.test_id})

    def _script(self, block: Block) -> Outcome:
        assigned = sorted(set(_CONN_ASSIGNMENT.findall(block.text)))
        dump = self.workspace / ".connections.json"
        dump_vars = " ".join(f'"{name}" "${{{name}}}"' for name in assigned)
        script = (f"set -euo pipefail\n{block.text}\n"
                  f"python -c 'import json, sys; a = sys.argv[1:]; print(json.dumps(dict(zip(a[::2], a[1::2]))))'"
                  f" {dump_vars} > {dump}\n")
        done = self._shell(script)
        if done.returncode != 0:
            return Outcome(False, f"exit {done.returncode}:\n{done.stdout[-6000:]}")
        if not assigned:
            return Outcome(True, done.stdout[-2000:])
        from tests.docs.markdown_checks import connection_problems, registered_connection_types

        known = registered_connection_types()
        problems = [problem for name, value in json.loads(dump.read_text()).items()
                    for problem in connection_problems(name.removeprefix("AIRFLOW_CONN_").lower(), value, known)]
        return Outcome(not problems, "\n".join(problems))

    def _console(self, block: Block) -> Outcome:
        for command, expected in console_steps(block.text):
            done = self._shell(f"set -o pipefail\n{command}\n")
            if not expected and done.returncode != 0:
                return Outcome(False, f"$ {command}\nexit {done.returncode}:\n{done.stdout[-6000:]}")
            if expected and not output_matches(expected, done.stdout):
                return Outcome(False, f"$ {command}\nshown:\n{chr(10).join(expected)}\nactual "
                                      f"(exit {done.returncode}):\n{done.stdout[-6000:]}")
        return Outcome(True)

    def _yaml(self, block: Block) -> Outcome:
        import yaml

        try:
            documents = list(yaml.safe_load_all(block.text))
        except yaml.YAMLError as exc:
            return Outcome(False, f"not YAML: {exc}")
        if not any(isinstance(d, dict) and d.get("kind") == "DataContract" for d in documents):
            return Outcome(True)
        contract = self.workspace / "doc_contracts" / f"block_{block.line}.odcs.yaml"
        contract.parent.mkdir(exist_ok=True)
        contract.write_text(block.text)
        done = self._shell(f"dativo contract lint {contract}")
        return Outcome(done.returncode == 0, done.stdout[-4000:])

    def _shell(self, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", script], cwd=self.workspace, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT)

    def _ask(self, request: dict) -> Outcome:
        return self.kernel.ask({**request, "page": str(self.page), "cwd": str(self.workspace), "env": self.env})


class Kernel:
    """The one Python process that runs every page's Python blocks (``kernel.py``), started on first use."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self._process: subprocess.Popen | None = None
        self._replies = None

    def ask(self, request: dict) -> Outcome:
        if self._process is None:
            read_end, write_end = os.pipe()
            with self.log.open("a") as log:
                self._process = subprocess.Popen(
                    [sys.executable, str(Path(__file__).with_name("kernel.py")), str(write_end)],
                    stdin=subprocess.PIPE, stdout=log, stderr=log, env=self.env, text=True, pass_fds=(write_end,))
            os.close(write_end)
            self._replies = os.fdopen(read_end)
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._replies.readline()
        if not line:
            self.close()
            return Outcome(False, f"the Python process died:\n{self.log.read_text()[-4000:]}")
        reply = json.loads(line)
        return Outcome(reply["ok"], reply["detail"])

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()
            self._process.wait(timeout=60)
            self._replies.close()
            self._process = None


def console_steps(text: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines (``\\``-continued) and the output lines shown after each."""
    steps: list[tuple[str, list[str]]] = []
    lines = text.rstrip("\n").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith("$ "):
            if steps:
                steps[-1][1].append(line)
            continue
        command = line[2:]
        while command.endswith("\\") and index < len(lines):
            command += "\n" + lines[index]  # the backslash stays: bash joins the lines, as in a terminal
            index += 1
        steps.append((command, []))
    return steps


def output_matches(shown: list[str], actual: str) -> bool:
    """Whether ``actual`` is what ``shown`` says, line by line, trailing spaces ignored: ``...`` in a line
    matches any text, and a line that is only ``...`` any number of lines."""
    pattern = "".join(
        r"(?:.*\n)*?" if line.strip() == "..." else ".*".join(map(re.escape, line.rstrip().split("..."))) + r"\n"
        for line in shown
    )
    return re.fullmatch(pattern, "".join(line.rstrip() + "\n" for line in actual.splitlines())) is not None
