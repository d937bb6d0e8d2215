"""THE identifier-matching rule: how a data subject's ids and e-mails are validated, normalised and matched.

Discovery, export, erasure, restriction (registry, ingest gate, scheduled checks) and verification all
match identifiers through this module, so "is this the subject's row" has one answer everywhere:

* **Validation.** An identifier is never blank: an empty or whitespace-only id or e-mail would match
  every anonymous row (a blank ``user_email`` is common), so it is refused with a :class:`ConfigError`
  that names the parameter and the request. An e-mail must have text on both sides of an ``@``.
* **Normalisation.** E-mails compare trimmed and lower-cased (:func:`normalise_email`, and
  :func:`normalised_emails` for an Arrow column: the same result, computed in Arrow). Ids compare as
  given (``"42"`` still matches the integer 42 where a column is numeric).
* **Whole values.** A stored value matches when the whole (normalised) value equals an identifier:
  ``x@example.org`` does not match ``x@example.org.uk``. A stored value that is null, empty or
  whitespace-only never matches anything, whatever the identifiers are (:func:`is_blank`).
* **Free text** (verification decodes every file and searches its text): an identifier matches on token
  boundaries. An e-mail must not be glued to further address characters: not preceded by local-part
  characters (``john.x@…`` is another address) nor followed by more domain (``….org.uk``, ``….org-x``).
  Other text identifiers must not be glued to letters or digits. Matching is case-insensitive, so
  upper-case spellings are found. Patterns are valid for both Python's :mod:`re` and RE2 (pyarrow).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo_provider.contracts.model import Column

#: Classifications an e-mail column can carry (personal data).
EMAIL_CLASSIFICATIONS = ("pii", "restricted")
#: Characters Python's re and RE2 both need escaped.
_REGEX_SPECIAL = frozenset("\\.^$|?*+()[]{}-")
#: An e-mail in text starts after the start or a character that cannot be part of its local part...
_EMAIL_BEFORE = r"(?:^|[^0-9a-z._%+-])"
#: ...and ends at the end, a character that cannot continue the domain, or a dot that ends a sentence.
_EMAIL_AFTER = r"(?:$|[^0-9a-z.-]|\.(?:$|[^0-9a-z-]))"
#: Any other text identifier is a token between non-alphanumerics.
_WORD_BEFORE, _WORD_AFTER = r"(?:^|[^0-9a-z])", r"(?:[^0-9a-z]|$)"


# --- validation and normalisation ---------------------------------------------------------------------


def is_blank(value: Any) -> bool:
    """True for None and for text that is empty or whitespace only: such a value identifies no one."""
    return value is None or (isinstance(value, str) and not value.strip())


def normalise_email(value: str) -> str:
    """The form e-mails are compared in: trimmed and lower-cased."""
    return value.strip().lower()


def is_email(value: str) -> bool:
    """A normalised e-mail's shape: text on both sides of an ``@``, no whitespace."""
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in value)


def validated_ids(values: Iterable[Any], *, parameter: str = "subject_ids", request_id: str | None = None
                  ) -> tuple[str, ...]:
    """``values`` as text ids, in order, duplicates dropped.

    :raises ConfigError: a value is None, empty or whitespace only (it would match anonymous rows).
    """
    ids = []
    for value in values:
        _refuse_blank(value, parameter, request_id)
        ids.append(str(value))
    return tuple(dict.fromkeys(ids))


def validated_emails(values: Iterable[Any], *, parameter: str = "emails", request_id: str | None = None
                     ) -> tuple[str, ...]:
    """``values`` normalised (:func:`normalise_email`), in order, duplicates dropped.

    :raises ConfigError: a value is not text, is blank, or is not shaped like an e-mail.
    """
    found = []
    for value in values:
        _refuse_blank(value, parameter, request_id)
        if not isinstance(value, str) or not is_email(normalise_email(value)):
            raise ConfigError(f"{_where(request_id)}{parameter} holds a value that is not an e-mail address "
                              "(expected text like name@example.org)")
        found.append(normalise_email(value))
    return tuple(dict.fromkeys(found))


def _refuse_blank(value: Any, parameter: str, request_id: str | None) -> None:
    if is_blank(value):
        raise ConfigError(f"{_where(request_id)}{parameter} holds an empty or whitespace-only value; it "
                          "would match every row whose identifier is blank (anonymous rows). Remove it")


def _where(request_id: str | None) -> str:
    return f"request {request_id!r}: " if request_id is not None else ""


# --- which columns hold e-mails -------------------------------------------------------------------


def is_email_column(column: Column) -> bool:
    """A personal-data column named ``email`` or ``*_email`` (any case), text unless declared otherwise.

    Callers that see the stored table also check its physical type is a string.
    """
    name = column.name.lower()
    return (column.classification in EMAIL_CLASSIFICATIONS
            and (column.logical_type or "string").lower() == "string"
            and (name == "email" or name.endswith("_email")))


# --- whole values in Arrow ------------------------------------------------------------------------


def normalised_emails(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A string column normalised like :func:`normalise_email`; blank values become null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    normalised = pc.utf8_lower(pc.utf8_trim_whitespace(values))
    return pc.if_else(pc.equal(normalised, ""), pa.scalar(None, normalised.type), normalised)


def email_mask(values: pa.Array | pa.ChunkedArray, wanted: Iterable[str]) -> pa.Array | pa.ChunkedArray:
    """True where the whole normalised value is one of ``wanted`` (never null; blanks never match).

    :param wanted: e-mails; normalised here, blanks ignored.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    targets = sorted({normalise_email(e) for e in wanted if not is_blank(e)})
    if not targets:
        return pa.repeat(False, len(values))
    normalised = normalised_emails(values)
    return pc.fill_null(pc.is_in(normalised, value_set=pa.array(targets, normalised.type)), False)


def email_columns_mask(batch: pa.RecordBatch | pa.Table, columns: Iterable[str], wanted: Iterable[str]
                       ) -> pa.Array | pa.ChunkedArray:
    """True where ANY of ``columns`` holds one of ``wanted`` (:func:`email_mask` per column, OR-ed)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = list(wanted)
    mask: Any = pa.repeat(False, batch.num_rows)
    for column in columns:
        mask = pc.or_(mask, email_mask(batch[column], wanted))
    return mask


def value_texts(values: pa.Array | pa.ChunkedArray, *, email: bool) -> tuple[pa.Array, list[str]]:
    """The distinct non-blank values of a column and their identifier text (normalised for e-mails).

    What a keyed-hash lookup (the restriction registry) compares; a blank stored value never appears.
    E-mails are normalised with :func:`normalise_email` itself, so the text is exactly what a request's
    e-mail was hashed from.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.drop_null(pc.unique(values))
    texts = pc.cast(distinct, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(texts), "")
    if pc.any(blank).as_py():
        keep = pc.invert(blank)
        distinct, texts = pc.filter(distinct, keep), pc.filter(texts, keep)
    found = texts.to_pylist()
    return distinct, [normalise_email(t) for t in found] if email else found


# --- free text ------------------------------------------------------------------------------------


def token_pattern(values: Iterable[str]) -> str:
    """One regular expression finding any of ``values`` as a token (use it case-insensitively).

    Values are trimmed and lower-cased; blanks are left out. E-mails (values with an ``@``) get e-mail
    boundaries, other values word boundaries (see the module docstring). Empty string when there is
    nothing to find. Valid for Python's re and for RE2.
    """
    chosen = {v.strip().lower() for v in values if not is_blank(v)}
    found = sorted((v for v in chosen if "@" in v), key=len, reverse=True)
    words = sorted((v for v in chosen if "@" not in v), key=len, reverse=True)
    parts = []
    if found:
        parts.append(f"{_EMAIL_BEFORE}(?:{'|'.join(map(escape, found))}){_EMAIL_AFTER}")
    if words:
        parts.append(f"{_WORD_BEFORE}(?:{'|'.join(map(escape, words))}){_WORD_AFTER}")
    return "|".join(parts)


def contains(text: str, values: Iterable[str]) -> bool:
    """Whether ``text`` holds any of ``values`` as a token (case-insensitive)."""
    pattern = token_pattern(values)
    return bool(pattern) and re.search(pattern, text, re.IGNORECASE | re.MULTILINE) is not None


def escape(value: str) -> str:
    """Escape for both Python's re and RE2 (re.escape's ``\\ `` for a space is not valid RE2)."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)
