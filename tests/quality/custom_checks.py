"""Custom check callables the contract tests refer to (``tests.quality.custom_checks:<name>``)."""

import pyarrow.compute as pc


def positive_amount(rows, rule):
    return pc.greater(rows["amount"], 0)


def never_empty(rows, rule):
    return rows.num_rows > 0


def explodes(rows, rule):
    raise RuntimeError("boom")
