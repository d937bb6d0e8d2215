"""The SQL an erasure hands to an external engine (Spark SQL or Trino), rendered exactly.

A hand-off (:mod:`dativo_provider.privacy.handoff`) lets Spark or Trino do the heavy delete of a very
large table while this provider plans it and proves it afterwards. This module only renders text:

* identifiers are always quoted: Spark with back-ticks, Trino with double quotes, a quote inside a
  name doubled (so ``a`b`` or ``we"ird`` stay one name);
* values are literals: integers as digits, text as a string literal. Spark reads backslashes in
  string literals as escapes (``spark.sql.parser.escapedStringLiterals=false``, the default), so both
  ``\\`` and ``'`` are escaped there; Trino follows the SQL standard (``'`` doubled, ``\\`` as is).
  Unicode is kept as is: both engines read UTF-8 statements;
* a row is the subject's when ANY match column holds one of its values: ``a IN (…) OR b IN (…)``. SQL
  three-valued logic deletes a row whose ``a`` is null but whose ``b`` matches (``NULL OR TRUE``),
  which is what :func:`~dativo_provider.privacy.erase.delete_rows` deletes too.

The rendered DELETE holds the subject's identifiers in clear text: it goes to a file readable by its
owner only, never into a log, XCom or a rendered template field (see the hand-off module). The
compaction statements hold none and can be passed inline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dativo_provider.exceptions import ConfigError

Engine = Literal["spark", "trino"]
ENGINES: tuple[str, ...] = ("spark", "trino")


def check_engine(engine: str) -> Engine:
    """``engine`` if it is one this module renders for.

    :raises ConfigError: another engine.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine is {engine!r}; the hand-off renders SQL for {ENGINES}")
    return engine  # type: ignore[return-value]


def quote_identifier(name: str, engine: Engine) -> str:
    """One identifier part, quoted for ``engine``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"an identifier part is empty or not text ({name!r}); check the table and catalog names")
    if engine == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any, engine: Engine) -> str:
    """``value`` (an int or a str: the only types identifier columns have) as a SQL literal."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"a subject identifier of type {type(value).__name__} cannot be rendered; "
                          "identifier columns are integer or string columns")
    if isinstance(value, int):
        return str(value)
    if "\x00" in value:
        raise ConfigError("a subject identifier holds a NUL character, which no SQL literal can carry")
    if engine == "spark":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return "'" + value.replace("'", "''") + "'"


def table_reference(table: str, engine: Engine, engine_catalog: str, branch: str | None = None) -> str:
    """``table`` (``namespace.name`` as our catalog names it) as ``engine`` names it in ``engine_catalog``.

    A branch other than main is Iceberg's Spark form ``….branch_<name>``; Trino writes no branches.

    :raises ConfigError: a branch for Trino, or a nested namespace for Trino (catalog.schema.table only).
    """
    namespace, _, name = table.rpartition(".")
    if not namespace or not name:
        raise ConfigError(f"table {table!r}: expected namespace.name")
    parts = [engine_catalog, *namespace.split("."), name]
    if engine == "trino" and len(parts) != 3:
        raise ConfigError(f"table {table!r}: Trino names tables catalog.schema.table; a nested namespace "
                          "cannot be reached")
    if branch not in (None, "main"):
        if engine == "trino":
            raise ConfigError(f"table {table!r}: branch {branch!r} holds the subject's rows, and Trino cannot "
                              "delete on a branch; hand the table to Spark, or erase it with DsrEraseOperator")
        parts.append(f"branch_{branch}")
    return ".".join(quote_identifier(part, engine) for part in parts)


def predicate(match: Mapping[str, Sequence[Any]], engine: Engine) -> str:
    """``col IN (…) OR col IN (…)`` over the columns with values, values sorted (stable text)."""
    terms = []
    for column, values in sorted(match.items()):
        if not values:
            continue
        ordered = sorted(set(values), key=lambda v: (isinstance(v, str), v))
        terms.append(f"{quote_identifier(column, engine)} IN ({', '.join(literal(v, engine) for v in ordered)})")
    if not terms:
        raise ConfigError("nothing to match: no column has a value of the subject; there is nothing to delete")
    return " OR ".join(terms)


def delete_statement(table: str, match: Mapping[str, Sequence[Any]], engine: Engine, engine_catalog: str,
                     branch: str | None = None) -> str:
    """The DELETE of the subject's rows of ``table`` (no trailing semicolon: Trino takes none)."""
    where = predicate(match, engine)
    return f"DELETE FROM {table_reference(table, engine, engine_catalog, branch)} WHERE {where}"


def count_statement(table: str, match: Mapping[str, Sequence[Any]], engine: Engine, engine_catalog: str) -> str:
    """A count of the subject's rows on ``engine`` (a pre-check; it holds identifiers like the DELETE)."""
    return (f"SELECT count(*) AS subject_rows FROM {table_reference(table, engine, engine_catalog)} "
            f"WHERE {predicate(match, engine)}")


def compaction_statement(table: str, engine: Engine, engine_catalog: str) -> str:
    """The statement that rewrites data files so the delete becomes physical on a merge-on-read table.

    Spark's ``rewrite_data_files`` with ``delete-file-threshold`` 1 rewrites every data file that has a
    delete file, so the deleted rows leave the data files; Trino's ``optimize`` rewrites the files
    below its ``file_size_threshold`` and applies their deletes (whether it reaches every file with a
    delete depends on the Trino version: the verification step finds any row left in a data file).
    Neither statement holds an identifier of the subject.
    """
    if engine == "spark":
        return (f"CALL {quote_identifier(engine_catalog, engine)}.system.rewrite_data_files("
                f"table => {literal(table, engine)}, options => map('delete-file-threshold', '1'))")
    return f"ALTER TABLE {table_reference(table, engine, engine_catalog)} EXECUTE optimize"
