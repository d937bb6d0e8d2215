"""Every fenced code block of README.md and docs/ runs as written (see ``snippets.py`` for how each
language is run); docs that drift from the code fail here. Test ids are ``page:line``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from dativo_provider.compat import AIRFLOW_V_3_0_PLUS
from tests.airflow.conftest import migrated_db
from tests.docs.snippets import REPO, RUN, SHOWN, Block, Kernel, Outcome, PageSession, blocks_of, output_matches

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "adr").glob("*.md"))]
BLOCKS = [block for page in PAGES for block in blocks_of(page)]
RUNNABLE = [block for block in BLOCKS if "not-run" not in block.markers and block.language not in SHOWN]

# Blocks that cannot run here or that another test runs as written, each marked `<!-- not-run: REASON -->`
# in its page. Keep this short.
NOT_RUN = {
    ("docs/connections.md",
     "run as written, with checks of its effect, by tests/airflow/test_connection_migration.py"),
    ("README.md", "dev/test is this test suite; dev/demo runs in tests/docs/test_demo.py"),
    ("docs/install.md", "needs an AWS account and an MWAA environment"),
    ("docs/install.md", "downloads the wheels of every dependency for MWAA's platform from PyPI and GitHub"),
    ("docs/install.md", "needs a Google Cloud project and a Composer environment"),
    ("docs/privacy.md", "needs a running Airflow API server and an intake user"),
    ("docs/handoff.md",
     "needs the official Spark or Trino provider and a cluster with Iceberg; neither installs or runs on this machine"),
}

# What the docs' DAGs and commands connect to: the servers on this machine.
DOC_POSTGRES_DB = "dativo_docs"
SHOP_ORDERS = """
DROP TABLE IF EXISTS public.orders;
CREATE TABLE public.orders (id integer PRIMARY KEY, customer text NOT NULL, amount numeric(12, 2),
                            updated_at timestamptz NOT NULL);
INSERT INTO public.orders VALUES (1, 'ada', 10.50, '2024-01-01 10:00+00'), (2, 'bob', 20.00, '2024-01-02 11:00+00');
"""


@pytest.fixture(scope="session")
def shop_db() -> str:
    """``shop_db``, the Postgres database the docs' examples read, with a small ``public.orders``."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DOC_POSTGRES_DB]).fetchone():
            conn.execute(f"CREATE DATABASE {DOC_POSTGRES_DB}")
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DOC_POSTGRES_DB, autocommit=True) as conn:
        conn.execute(SHOP_ORDERS)
    return (f'{{"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", '
            f'"schema": "{DOC_POSTGRES_DB}"}}')


@pytest.fixture(scope="session")
def doc_env(tmp_path_factory: pytest.TempPathFactory, shop_db: str) -> dict[str, str]:
    """A private AIRFLOW_HOME (migrated once), the virtualenv and the pip shim first on PATH."""
    root = tmp_path_factory.mktemp("docs")
    shims = root / "bin"
    shims.mkdir()
    (shims / "pip").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests/docs/pip_shim.py"}" "$@"\n')
    (shims / "pip").chmod(0o755)
    (root / "dags").mkdir()
    venv_bin = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "DATIVO"))}
    env.update({
        "PATH": f"{shims}:{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
        "AIRFLOW_HOME": str(root / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        "AIRFLOW_CONN_SHOP_DB": shop_db,
        "PYTHONUNBUFFERED": "1",
        "DOCS_REPO": str(REPO),
        "PYTHONPATH": str(REPO),
    })
    # The docs' `airflow ...` commands and DAGs assume an initialised metadata database, as a user's has: a
    # copy of the one `airflow db migrate` made for the tests' own AIRFLOW_HOME.
    (root / "airflow-home").mkdir()
    shutil.copyfile(migrated_db(), root / "airflow-home" / "airflow.db")
    return env


@pytest.fixture(scope="session")
def kernel(doc_env, tmp_path_factory):
    """The Python process that runs the docs' Python blocks."""
    process = Kernel(doc_env, tmp_path_factory.mktemp("kernel") / "kernel.log")
    yield process
    process.close()


@pytest.fixture(scope="session")
def sessions(doc_env, kernel, tmp_path_factory):
    """One PageSession per page, made when the page's first block runs."""
    opened: dict[Path, PageSession] = {}

    def session_for(page: Path) -> PageSession:
        if page not in opened:
            collected = [block for block in BLOCKS if block.page == page]  # the page may change meanwhile
            opened[page] = PageSession(page, tmp_path_factory.mktemp("pages"), doc_env, kernel, collected)
        return opened[page]

    return session_for


def _needs_airflow_3(block: Block) -> bool:
    """The docs' DAGs import ``airflow.sdk`` and are run with ``dag.test()``: Airflow 3 only."""
    return block.language == "python" and "DAG(" in block.text


#: The blocks this Airflow runs: the docs' DAGs only on Airflow 3 (collected, never skipped, there).
RUNNABLE_HERE = [block for block in RUNNABLE if AIRFLOW_V_3_0_PLUS or not _needs_airflow_3(block)]


@pytest.mark.parametrize("block", RUNNABLE_HERE, ids=[block.test_id for block in RUNNABLE_HERE])
def test_doc_block_runs(block: Block, sessions) -> None:
    outcome = sessions(block.page).outcome(block)
    assert outcome.ok, f"{block.test_id} (```{block.language}) failed:\n{outcome.detail}"


def test_every_block_is_run_or_shown():
    languages = {block.language for block in BLOCKS}
    assert languages <= RUN | SHOWN, f"no rule to run ```{sorted(languages - RUN - SHOWN)} blocks"
    assert len(RUNNABLE) >= 30


def test_the_readme_links_every_docs_page():
    readme = (REPO / "README.md").read_text()
    pages = {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
    assert {page for page in pages if f"({page})" not in readme} == set()
    assert "(docs/adr/)" in readme


def test_blocks_left_out_are_the_listed_few():
    marked = {(str(b.page.relative_to(REPO)), b.markers["not-run"]) for b in BLOCKS if "not-run" in b.markers}
    assert marked == NOT_RUN


# -- the harness fails when a snippet breaks ----------------------------------------------------------

FAKE_PAGE = '''# A page

```python
total = 40 + 2
```

```python
assert total == 42, total
print("the second block sees the first one's names")
```

```python
from dativo_provider.operators.ingest import IcebergIngestOperator

IcebergIngestOperator(task_id="x", source={"type": "files", "path": "."}, table="a.b", no_such_argument=1)
```

```bash
AIRFLOW_CONN_GOOD='{"conn_type": "postgres", "host": "db"}'
dativo --help > /dev/null
```

```bash
AIRFLOW_CONN_UNKNOWN_TYPE='{"conn_type": "no_such_type", "host": "db"}'
```

```bash
pip install "dativo-airflow-provider[postgres]" --constraint https://example.invalid/constraints.txt
```

```bash
pip install "dativo-airflow-provider[no_such_extra]"
```

<!-- file: broken.yaml -->
```yaml
apiVersion: v3.1.0
kind: DataContract
id: urn:x
version: 1.0.0
status: active
team: {name: t}
schema:
  - name: t
    properties:
      - {name: a, logicaltype: string}
```

```console
$ dativo contract lint broken.yaml
broken.yaml:10: ...unknown key 'logicaltype'...
...
```

```console
$ dativo contract lint broken.yaml
all contracts lint clean, 0 warning(s)
```

```yaml
apiVersion: v3.1.0
kind: DataContract
id: urn:y
```

```json
{"a": 1,}
```

<!-- not-run: needs a server this machine lacks -->
```bash
exit 1
```
'''

FAKE_EXPECTED = [True, True, False, True, False, True, False, True, True, False, False, False]


def test_the_harness_fails_each_broken_snippet(tmp_path, doc_env, kernel):
    page = tmp_path / "fake.md"
    page.write_text(FAKE_PAGE)
    session = PageSession(page, tmp_path / "work", doc_env, kernel)
    outcomes = [session.outcome(block) for block in session.blocks]
    assert [block.test_id for block in session.blocks][:2] == ["fake.md:3", "fake.md:7"]
    assert [o.ok for o in outcomes] == FAKE_EXPECTED, [(b.test_id, o) for b, o in zip(session.blocks, outcomes)]
    assert "no_such_argument" in outcomes[2].detail
    assert "'no_such_type' is registered by no installed provider" in outcomes[4].detail
    assert "no extra 'no_such_extra'" in outcomes[6].detail
    assert "all contracts lint clean" in outcomes[9].detail and "logicaltype" in outcomes[9].detail
    assert (session.workspace / "broken.yaml").is_file()


def test_console_output_matching():
    assert output_matches(["a ...", "...", "z"], "a 1\nb\nc\nz\n")
    assert output_matches(["a", "..."], "a\n")
    assert not output_matches(["a", "z"], "a\nb\nz\n")
    assert not output_matches(["a"], "a\nmore\n")
    assert Outcome(True).ok
