"""Writing rendered Markdown-KV documents: to a string column, or to ``.mdkv`` files on storage.

Both take the same rows and options as
:func:`~dativo_provider.markdown_kv.render.render_table_to_markdown_kv` and stream: memory holds one
batch of documents (or one group), never the whole table.
"""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

from dativo_provider import objectstore
from dativo_provider.connections import ObjectStoreConfig
from dativo_provider.markdown_kv.layouts import SCHEMAS
from dativo_provider.markdown_kv.render import render_table_to_markdown_kv
from dativo_provider.sources.file_stream import io_error

#: Documents per batch written by :func:`render_to_batches`.
BATCH_DOCUMENTS = 500
EXTENSION = ".mdkv"
#: The result lists this many paths; ``documents`` always has the full count.
MAX_PATHS = 100


def render_to_batches(
    data: pa.Table | Iterable[pa.RecordBatch],
    *,
    key_columns: Sequence[str] = (),
    group_by: Sequence[str] = (),
    title_column: str | None = None,
    batch_documents: int = BATCH_DOCUMENTS,
) -> Iterator[pa.RecordBatch]:
    """The rendered documents as batches of the ``string`` layout: ``doc_id``, ``content``.

    Ingesting these batches and reading them back with the ``markdown_kv`` source gives the same
    keys and values.
    """
    doc_ids: list[str] = []
    contents: list[str] = []
    documents = render_table_to_markdown_kv(
        data, key_columns=key_columns, group_by=group_by, title_column=title_column
    )
    for doc_id, text in documents:
        doc_ids.append(doc_id)
        contents.append(text)
        if len(doc_ids) >= batch_documents:
            yield pa.record_batch([doc_ids, contents], schema=SCHEMAS["string"])
            doc_ids, contents = [], []
    if doc_ids:
        yield pa.record_batch([doc_ids, contents], schema=SCHEMAS["string"])


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_markdown_kv_files` wrote: counts, and the first :data:`MAX_PATHS` paths."""

    documents: int
    bytes_written: int
    paths: tuple[str, ...]


def file_name(doc_id: str, extension: str = EXTENSION) -> str:
    """A file name for ``doc_id``: percent-encoded (``/`` too, so every document is one flat file).

    A leading ``.`` or ``_`` is encoded as well: readers (this package's sources, Spark) skip such
    names as hidden. The encoding is reversible (``urllib.parse.unquote``), so names never collide.
    """
    name = urllib.parse.quote(doc_id, safe="")
    if name[:1] in (".", "_"):
        name = f"%{ord(name[0]):02X}{name[1:]}"
    return name + extension


def write_markdown_kv_files(
    data: pa.Table | Iterable[pa.RecordBatch],
    path: str,
    *,
    connection: ObjectStoreConfig | None = None,
    key_columns: Sequence[str] = (),
    group_by: Sequence[str] = (),
    title_column: str | None = None,
    extension: str = EXTENSION,
) -> WriteResult:
    """Write one ``<doc_id><extension>`` file per rendered document under ``path``.

    :param path: a local directory (created if missing) or ``s3://bucket/prefix``.
    :param connection: S3 credentials and endpoint; None uses the AWS default chain. Local: ignored.
    :raises MarkdownKVRenderError: see :func:`render_table_to_markdown_kv`. Files written before the
        error stay; each file is complete (local files are renamed into place, S3 objects appear
        whole), and a rerun overwrites them with the same content.
    """
    location = objectstore.parse(path, "markdown_kv sink: path")
    fs = location.filesystem(connection)
    if location.bucket is None:
        with _io_errors(f"creating {location.base}"):
            fs.create_dir(location.base)
    documents, written = 0, 0
    paths: list[str] = []
    for doc_id, text in render_table_to_markdown_kv(
        data, key_columns=key_columns, group_by=group_by, title_column=title_column
    ):
        target = f"{location.base}/{file_name(doc_id, extension)}"
        written += _write(fs, target, text.encode("utf-8"), local=location.bucket is None)
        documents += 1
        if len(paths) < MAX_PATHS:
            paths.append(location.display(target))
    return WriteResult(documents, written, tuple(paths))


def _write(fs: pafs.FileSystem, target: str, data: bytes, *, local: bool) -> int:
    # Local files go through a hidden temporary name and a rename, so a reader never sees half a file;
    # S3 objects become visible only when the upload completes.
    staging = f"{target.rsplit('/', 1)[0]}/.{uuid.uuid4().hex}.tmp" if local else target
    with _io_errors(f"writing {target}"):
        with fs.open_output_stream(staging) as out:
            out.write(data)
        if local:
            fs.move(staging, target)
    return len(data)


@contextlib.contextmanager
def _io_errors(action: str) -> Iterator[None]:
    """OSError as the project's terminal (permissions, missing bucket) or transient error."""
    try:
        yield
    except OSError as exc:
        raise io_error(exc, action) from exc
