"""Issue 9, item 8: old ``metadata.json`` files outside the metadata log must not survive a purge.

With ``write.metadata.previous-versions-max`` small, most old metadata files fall out of the log long
before the purge starts; they hold the table's history (snapshot summaries, schema, bounds) and are
dead, so the purge deletes them at once, whatever the safety window. A metadata file NEWER than the
current one (a concurrent commit about to land) is kept until it is older than the window.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pyarrow.fs as pafs
from pyiceberg.expressions import EqualTo

from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.iceberg.files import metadata_version
from dativo_provider.privacy.erase import delete_rows
from dativo_provider.privacy.purge import purge_table
from tests.privacy.test_erase import BASE, SUBJECT, TABLE, load_in_batches
from tests.privacy.test_purge import metadata_files, path_of, table_root


def many_commits(catalog, loads: int = 12) -> None:
    load_in_batches(catalog, [[BASE + i * 10 + j for j in range(5)] for i in range(loads)] + [[SUBJECT]])
    table = catalog.load().load_table(TABLE)
    table.transaction().set_properties({"write.metadata.previous-versions-max": "2"}).commit_transaction()
    load_in_batches(catalog, [[BASE + 900 + i] for i in range(3)], source="memory://more")


def test_old_metadata_outside_the_log_is_removed_by_the_purge(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    many_commits(catalog)
    table = catalog.load().load_table(TABLE)
    fs, root = table_root(table)
    assert len(metadata_files(fs, root)) > 10  # pyiceberg deletes none by default
    deletion = delete_rows(catalog, TABLE, EqualTo("id", SUBJECT), request_id="dsr-8")

    result = purge_table(catalog, TABLE, subject=EqualTo("id", SUBJECT), request_id="dsr-8")  # default 30-min window

    table = catalog.load().load_table(TABLE)
    referenced = {path_of(table.metadata_location), *(path_of(e.metadata_file) for e in table.metadata.metadata_log)}
    assert metadata_files(fs, root) == referenced
    assert len(referenced) <= 1 + 2
    assert result.metadata_files_removed > 10
    assert result.kept_files_younger_than_window == 0


def test_a_newer_metadata_file_of_a_concurrent_commit_stays_until_the_window_passes(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake")
    many_commits(catalog, loads=3)
    deletion = delete_rows(catalog, TABLE, EqualTo("id", SUBJECT), request_id="dsr-8")
    table = catalog.load().load_table(TABLE)
    fs, root = table_root(table)
    current = metadata_version(table.metadata_location)
    # A writer prepared the next versions from the current one and has not committed yet (the purge
    # adds a few versions of its own, so leave room above them).
    in_flight = f"{root}/metadata/{current + 50:05d}-{uuid.uuid4()}.metadata.json"
    with fs.open_output_stream(in_flight) as stream:
        stream.write(b"{}")

    young = purge_table(catalog, TABLE, subject=EqualTo("id", SUBJECT), request_id="dsr-8")
    assert fs.get_file_info(in_flight).type == pafs.FileType.File
    assert young.kept_files_younger_than_window == 1

    later = datetime.now(timezone.utc) + timedelta(hours=1)
    deletion = delete_rows(catalog, TABLE, EqualTo("id", BASE), request_id="dsr-9")
    purge_table(catalog, TABLE, subject=EqualTo("id", SUBJECT), request_id="dsr-8", now=later)
    assert fs.get_file_info(in_flight).type == pafs.FileType.NotFound
