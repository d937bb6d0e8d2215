"""The identifier rule (privacy/identifiers.py): validation, e-mail normalisation, whole-value matching of
stored values (on a real Iceberg table) and token matching in free text, checked with both regex engines
that use it (Python's re for decoded values, RE2 through pyarrow for whole columns)."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from dativo_provider.contracts.model import Column
from dativo_provider.exceptions import ConfigError
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.privacy import identifiers as rule
from dativo_provider.privacy import request as request_module
from dativo_provider.privacy.request import SubjectRequest

SUBJECT = "x@example.org"
#: (text, whether it holds SUBJECT as an e-mail token). Read each line as a sentence about one address.
TEXTS = [
    ("x@example.org", True),
    ("X@EXAMPLE.ORG", True),
    ("  X@Example.Org  ", True),
    ("reply to x@example.org.", True),  # a full stop ends the sentence, not the domain
    ("reply to x@example.org...", True),
    ("<X@example.org>; other@example.org", True),
    ("mailto:x@example.org?subject=hi", True),
    ("?email=x@example.org&x=1", True),
    ("'x@example.org'", True),
    ('{"email": "x@example.org"}', True),
    ("x@example.org,y@example.org", True),
    ("first line\nx@example.org\nlast line", True),
    ("x@example.org_old", True),  # "_" cannot continue a host name: this is the address
    ("x@example.org.uk", False),
    ("X@EXAMPLE.ORG.UK", False),
    ("JOHN.X@EXAMPLE.ORG", False),
    ("AX@EXAMPLE.ORG", False),
    ("X@EXAMPLE.ORG-MAIL.NET", False),
    ("mail x@example.org.uk today", False),
    ("x@example.org-mail.net", False),
    ("x@example.organic.com", False),
    ("x@example.org2", False),
    ("john.x@example.org", False),
    ("ax@example.org", False),
    ("a+x@example.org", False),
    ("a-x@example.org", False),
    ("a_x@example.org", False),
    ("1x@example.org", False),
    ("", False),
]


def test_emails_match_on_token_boundaries_with_python_re_and_re2():
    pattern = rule.token_pattern([SUBJECT])
    texts = [t for t, _ in TEXTS]
    expected = [e for _, e in TEXTS]
    with_re = [bool(re.search(pattern, t, re.IGNORECASE | re.MULTILINE)) for t in texts]
    with_re2 = pc.match_substring_regex(pa.array(texts), pattern, ignore_case=True).to_pylist()
    assert with_re == expected
    assert with_re2 == expected
    assert [rule.contains(t, ["  X@Example.ORG "]) for t in texts] == expected


def test_other_identifiers_match_as_words_and_blanks_are_never_sought():
    pattern = rule.token_pattern(["cus_123", "", "   ", SUBJECT])
    cases = {"cus_123": True, "id cus_123,": True, "CUS_123": True, "cus_1234": False, "xcus_123": False,
             "x@example.org.uk cus_12": False, "   ": False, "": False}
    assert {t: bool(re.search(pattern, t, re.IGNORECASE)) for t in cases} == cases
    assert rule.token_pattern(["", "  ", None]) == ""
    assert not rule.contains("anything at all", ["", " "])


def test_special_characters_are_escaped_for_both_engines():
    value = "o'neil+tag@ex-ample.co"
    pattern = rule.token_pattern([value])
    texts = ["to: O'Neil+Tag@Ex-Ample.co.", "o'neil+tag@ex-ample.com", "o'neilxtag@ex-ample.co"]
    assert [bool(re.search(pattern, t, re.IGNORECASE)) for t in texts] == [True, False, False]
    with_re2 = pc.match_substring_regex(pa.array(texts), pattern, ignore_case=True)
    assert with_re2.to_pylist() == [True, False, False]


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ids, emails, parameter", [
    ((), ("",), "emails"), ((), ("   ",), "emails"), ((), ("\t\n",), "emails"), ((), (None,), "emails"),
    (("",), (), "subject_ids"), ((" ",), ("zoe@example.net",), "subject_ids"), ((None,), (), "subject_ids"),
])
def test_a_request_with_a_blank_identifier_is_refused(ids, emails, parameter):
    """Issue 9, item 4: a blank e-mail matched 1,265 anonymous rows; the engine API refuses it."""
    message = rf"^request 'dsr-7': {parameter} holds an empty or whitespace-only"
    with pytest.raises(ConfigError, match=message):
        SubjectRequest("dsr-7", "erasure", "customer", subject_ids=ids, emails=emails)


def test_a_request_with_a_malformed_email_or_a_bare_string_is_refused():
    with pytest.raises(ConfigError, match="request 'dsr-7': emails holds a value that is not an e-mail"):
        SubjectRequest("dsr-7", "access", "customer", emails=["zoe at example.net"])
    with pytest.raises(ConfigError, match="request 'dsr-7': subject_ids and emails are lists"):
        SubjectRequest("dsr-7", "access", "customer", subject_ids="42")
    with pytest.raises(ConfigError, match="at least one subject id or e-mail"):
        SubjectRequest("dsr-7", "access", "customer")


def test_a_request_keeps_emails_normalised_and_ids_as_text():
    request = SubjectRequest("dsr-7", "access", "customer", subject_ids=[42, "42", "cus_9"],
                             emails=["  Zoe@Example.NET ", "zoe@example.net"])
    assert request.subject_ids == ("42", "cus_9")
    assert request.emails == ("zoe@example.net",)
    assert request_module.normalise_email is rule.normalise_email  # still importable from request.py


def test_email_columns():
    assert rule.is_email_column(Column("email", "string", classification="pii"))
    assert rule.is_email_column(Column("Work_Email", None, classification="restricted"))
    assert not rule.is_email_column(Column("email", "string", classification="internal"))
    assert not rule.is_email_column(Column("emails_sent", "integer", classification="pii"))
    assert not rule.is_email_column(Column("email", "integer", classification="pii"))


# --- whole values of stored columns --------------------------------------------------------------


STORED = ["zoe@example.net", " ZOE@Example.NET ", "zoe@example.net.uk", "", "   ", None, "\t",
          "other@example.org", "john.zoe@example.net"]


def test_email_mask_on_an_iceberg_column_matches_whole_normalised_values_and_never_blanks(tmp_path):
    catalog = embedded_catalog(tmp_path / "lake").load()
    catalog.create_namespace("crm")
    rows = pa.table({"id": pa.array(range(len(STORED)), pa.int64()), "email": pa.array(STORED, pa.string())})
    table = catalog.create_table("crm.signups", rows.schema)
    table.append(rows.slice(0, 4))
    table.append(rows.slice(4))
    stored = table.scan().to_arrow().sort_by("id")["email"]
    assert stored.num_chunks >= 1 and stored.to_pylist() == STORED

    wanted = ["  Zoe@EXAMPLE.net", "", "   "]  # blanks among the wanted values are ignored
    mask = rule.email_mask(stored, wanted)
    expected = [v is not None and v.strip().lower() == "zoe@example.net" for v in STORED]
    assert mask.to_pylist() == expected == [True, True] + [False] * 7
    assert rule.email_mask(stored, ["", " "]).to_pylist() == [False] * len(STORED)
    assert rule.normalised_emails(stored).to_pylist()[3:7] == [None] * 4

    both = pa.table({"email": stored, "work_email": pa.array(list(reversed(STORED)), pa.string())})
    expected_both = [a or b for a, b in zip(expected, reversed(expected))]
    assert rule.email_columns_mask(both, ["email", "work_email"], wanted).to_pylist() == expected_both
    assert rule.email_columns_mask(both, [], wanted).to_pylist() == [False] * len(STORED)


def test_value_texts_leave_blank_stored_values_out():
    values = pa.chunked_array([["A@X.org", " a@x.org", ""], ["  ", None, "b@x.org"]])
    distinct, texts = rule.value_texts(values, email=True)
    assert texts == ["a@x.org", "a@x.org", "b@x.org"]
    assert distinct.to_pylist() == ["A@X.org", " a@x.org", "b@x.org"]
    ids, texts = rule.value_texts(pa.array([7, None, 7, 8], pa.int64()), email=False)
    assert (ids.to_pylist(), texts) == ([7, 8], ["7", "8"])


# --- export refuses a discovery that selects by a blank value -----------------------------------------


def test_export_refuses_to_select_rows_by_a_blank_value(tmp_path):
    """Issue 9, item 4: selecting by ``email = ""`` would hand out every anonymous row."""
    from dativo_provider.privacy.discovery import Discovery, TableMatch
    from dativo_provider.privacy.export import export_subject

    config = embedded_catalog(tmp_path / "lake")
    catalog = config.load()
    catalog.create_namespace("crm")
    rows = pa.table({"id": pa.array(range(len(STORED)), pa.int64()), "email": pa.array(STORED, pa.string())})
    table = catalog.create_table("crm.signups", rows.schema)
    table.append(rows)
    snapshot = table.current_snapshot().snapshot_id

    def discovery(values):
        match = TableMatch("crm.signups", "signups", "urn:x", ("email",), {"email": values}, "email", 1,
                           snapshot)
        return Discovery("dsr-7", "customer", [match])

    refused = r"request 'dsr-7': discovery's selection of crm.signups.email holds an empty"
    with pytest.raises(ConfigError, match=refused):
        export_subject(config, discovery(["zoe@example.net", "   "]), tmp_path / "out")
    assert not (tmp_path / "out" / "dsr-7").exists()

    manifest = export_subject(config, discovery(["zoe@example.net"]), tmp_path / "out")
    assert manifest.total_rows == 1
