"""Custom contract checks used by the example contracts (``engine: custom`` rules).

A custom check receives the checked rows as a ``pyarrow.Table`` and the rule, and returns one boolean
per row (True = the row is valid) or one boolean for the whole dataset; see docs/quality.md.
"""

import pyarrow.compute as pc


def amount_matches_quantity(rows, rule):
    """An order of at least one item costs something: quantity > 0 implies amount > 0."""
    return pc.or_(pc.less_equal(rows["quantity"], 0), pc.greater(rows["amount"], 0))
