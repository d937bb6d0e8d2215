"""Markdown-KV documents → Iceberg, in all three layouts, from the bundled sample docs.

### What it shows

The sample docs (`dativo_provider/sample_data/docs`) are a coffee shop's product sheets, runbook,
refund policy and store page: YAML front matter, headers, `key:: value` lines and
`- **key**: value` bullets. Each task reads them incrementally (each file version once) into one
layout:

- `row_per_kv`: one row per entry (doc_id, section, key, value, value_json, ord, extracted_at),
  appended, so every version of an entry is kept;
- `document_level`: one row per document with its sections nested, merged on `doc_id` so the table
  holds each document's latest version;
- `string`: the raw text per document, for embedding pipelines, merged on `doc_id`.

### What it needs

Nothing beyond the provider: the sample docs ship in the package, and without an `iceberg_default`
connection the tables land in the embedded SQLite catalog under `$AIRFLOW_HOME/dativo`.

### How to run it

`airflow dags test example_markdown_kv_to_iceberg`, or trigger it in the UI. Runs do not overlap
(`max_active_runs=1`): the source is incremental. See docs/sources-markdown-kv.md.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

import dativo_provider
from dativo_provider.operators.ingest import IcebergIngestOperator

SAMPLE_DOCS = str(Path(dativo_provider.__file__).parent / "sample_data" / "docs")
LATEST_PER_DOCUMENT = {"mode": "merge", "merge_keys": ["doc_id"]}


def docs(layout: str) -> dict[str, str]:
    """A markdown_kv source over the sample docs; doc_id is the path under the folder."""
    return {"type": "markdown_kv", "path": SAMPLE_DOCS, "glob": "**/*.md", "layout": layout}


with DAG(
    dag_id="example_markdown_kv_to_iceberg",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["dativo", "example", "markdown-kv"],
):
    IcebergIngestOperator(
        task_id="ingest_doc_entries",
        source=docs("row_per_kv"),
        table="examples.doc_entries",
        write_options={"mode": "append"},
    )
    IcebergIngestOperator(
        task_id="ingest_documents",
        source=docs("document_level"),
        table="examples.documents",
        write_options=LATEST_PER_DOCUMENT,
    )
    IcebergIngestOperator(
        task_id="ingest_doc_text",
        source=docs("string"),
        table="examples.doc_text",
        write_options=LATEST_PER_DOCUMENT,
    )
