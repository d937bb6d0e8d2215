"""A contract ``pattern`` (Python ``re``, full match) rewritten for the regex engine of each store.

The docs promise Python ``re`` semantics: a value is valid when ``re.fullmatch(pattern, value)``. The
stores' engines differ from Python and from each other (DuckDB uses RE2, MariaDB PCRE2, Postgres its
own ARE engine): ``\\w`` is ASCII in RE2 and PCRE2 but Unicode in Python, ``.`` matches a newline in
Postgres but not in Python, ``$`` also matches before a final newline in Python and PCRE2, MariaDB's
``REGEXP`` follows the column's (case-insensitive) collation. So the pattern is parsed with Python's own
parser and written out again, construct by construct, in a form that means the same on the target:

* ``\\w``, ``\\d``, ``\\s`` become the classes Python means (``[\\p{L}\\p{N}_]``, ``\\p{Nd}`` and
  Python's whitespace list on RE2/PCRE2; explicit code-point ranges taken from Python's own tables on
  Postgres, which has no ``\\p{..}``); ``(?a)`` keeps them ASCII;
* ``.`` is "any character but a newline" (``[^\\n]``), or any character under ``(?s)``;
* quantifiers keep their counts (greediness cannot change whether a value fully matches);
* ``^``/``\\A`` at the very start and ``$``/``\\Z`` at the very end are the full-match anchors;
* ``(?i)`` for the whole pattern is kept.

Everything else (back-references, look-arounds, word boundaries, anchors inside the pattern, local
flags, possessive or atomic groups) has no exact equivalent on every store and is refused with
:class:`UnsupportedPattern`, naming the construct: run such a rule with ``dativoEngine: custom``, which
evaluates ``re.fullmatch`` in Python.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Any, Literal

from dativo_provider.exceptions import ConfigError

Dialect = Literal["duckdb", "postgres", "mysql"]

_parser: Any = getattr(re, "_parser", None) or __import__("sre_parse")
_c: Any = getattr(re, "_constants", None) or __import__("sre_constants")


class UnsupportedPattern(ConfigError):
    """The pattern uses a construct the store's regex engine cannot express with Python's meaning."""


def full_match_regex(pattern: str, dialect: Dialect) -> str:
    """``pattern`` as a regex that matches a whole value on ``dialect`` exactly when Python's
    ``re.fullmatch(pattern, value)`` does. The result is anchored (``^(?:...)$`` or ``\\z``).

    :raises UnsupportedPattern: a construct has no exact equivalent on ``dialect``.
    """
    try:
        tree = _parser.parse(pattern)
    except re.error as exc:
        raise UnsupportedPattern(f"regex {pattern!r} does not compile: {exc}") from None
    flags = tree.state.flags
    # Postgres folds case by the database's locale: Python's case-insensitive matches are spelled out.
    fold = bool(flags & re.IGNORECASE) and dialect == "postgres"
    writer = _Writer(pattern, dialect, ascii_only=bool(flags & re.ASCII), dotall=bool(flags & re.DOTALL),
                     fold=fold)
    body = writer.sequence(list(tree), top=True)
    prefix = "(?i)" if flags & re.IGNORECASE and not fold else ("(?-i)" if dialect == "mysql" else "")
    end = "\\z" if dialect == "mysql" else "$"  # PCRE2's $ also matches before a final newline
    return f"{prefix}^(?:{body}){end}"


class _Writer:
    def __init__(self, pattern: str, dialect: Dialect, *, ascii_only: bool, dotall: bool, fold: bool) -> None:
        self.pattern = pattern
        self.dialect = dialect
        self.ascii_only = ascii_only
        self.dotall = dotall
        self.fold = fold

    def refuse(self, construct: str) -> UnsupportedPattern:
        return UnsupportedPattern(
            f"regex {self.pattern!r}: {construct} has no exact equivalent in {_ENGINE[self.dialect]}; "
            "rewrite the pattern without it, or run the rule with customProperties dativoEngine: custom "
            "(evaluated in Python with re.fullmatch)")

    def sequence(self, items: list[tuple[Any, Any]], *, top: bool = False) -> str:
        out = []
        for position, (op, av) in enumerate(items):
            if op is _c.AT:
                at_start = top and position == 0 and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING)
                at_end = top and position == len(items) - 1 and av in (_c.AT_END, _c.AT_END_STRING)
                if at_start or at_end:
                    continue  # the full-match anchors say the same
                raise self.refuse(f"the anchor or boundary {_AT_NAMES.get(av, str(av))} inside the pattern")
            out.append(self.item(op, av))
        return "".join(out)

    def item(self, op: Any, av: Any) -> str:
        if op is _c.LITERAL:
            variants = self.variants(av)
            if len(variants) == 1:
                return self.char(av)
            return "[" + "".join(self.char(v, in_class=True) for v in variants) + "]"
        if op is _c.NOT_LITERAL:
            return "[^" + "".join(self.char(v, in_class=True) for v in self.variants(av)) + "]"
        if op is _c.ANY:
            if self.dotall:
                return "." if self.dialect == "postgres" else "(?s:.)"
            return f"[^{self.char(10, in_class=True)}]"
        if op is _c.IN:
            return self.char_class(av)
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.sequence(list(branch)) for branch in av[1]) + ")"
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise self.refuse("a local flag group (?flags:...)")
            return "(?:" + self.sequence(list(sub)) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            low, high, sub = av
            inner = self.sequence(list(sub))
            return f"(?:{inner}){self.quantifier(low, high)}"
        raise self.refuse(_OP_NAMES.get(str(op), f"the construct {op}"))

    def variants(self, code: int) -> list[int]:
        """``code`` and, under a spelled-out ``(?i)``, every character Python's ``re`` matches it with."""
        if not self.fold:
            return [code]
        return _case_variants(code, self.ascii_only)

    def quantifier(self, low: int, high: int) -> str:
        unbounded = high == _c.MAXREPEAT
        if self.dialect == "duckdb" and max(low, 0 if unbounded else high) > 1000:
            raise self.refuse("a repetition count above 1000")
        if (low, unbounded) == (0, True):
            return "*"
        if (low, unbounded) == (1, True):
            return "+"
        if unbounded:
            return f"{{{low},}}"
        if (low, high) == (0, 1):
            return "?"
        return f"{{{low}}}" if low == high else f"{{{low},{high}}}"

    def char_class(self, items: list[tuple[Any, Any]]) -> str:
        negate = bool(items) and items[0][0] is _c.NEGATE
        items = items[1:] if negate else items
        if len(items) == 1 and items[0][0] is _c.CATEGORY and not negate:
            return self.category(items[0][1])
        parts: list[str] = []
        for op, av in items:
            if op is _c.LITERAL:
                parts.extend(self.char(v, in_class=True) for v in self.variants(av))
            elif op is _c.RANGE:
                parts.append(f"{self.char(av[0], in_class=True)}-{self.char(av[1], in_class=True)}")
                if self.fold:
                    if av[1] - av[0] > 5000:
                        raise self.refuse("a case-insensitive range wider than 5000 characters")
                    extra = {v for code in range(av[0], av[1] + 1) for v in self.variants(code)}
                    parts.extend(self.char(v, in_class=True) for v in sorted(extra)
                                 if not av[0] <= v <= av[1])
            elif op is _c.CATEGORY and av in _POSITIVE:
                parts.append(self.category_body(av))
            else:
                raise self.refuse("a negated class (\\W, \\D, \\S) inside [...]")
        return "[" + ("^" if negate else "") + "".join(parts) + "]"

    def category(self, category: Any) -> str:
        if category in _POSITIVE:
            return "[" + self.category_body(category) + "]"
        positive = _NEGATED[category]
        return "[^" + self.category_body(positive) + "]"

    def category_body(self, category: Any) -> str:
        """The inside of a bracket expression for ``\\d``, ``\\w`` or ``\\s``, as Python means them."""
        name = _CATEGORY_NAMES[category]
        if self.ascii_only:
            return {"d": "0-9", "w": "A-Za-z0-9_", "s": "".join(self.char(ord(c), in_class=True)
                                                              for c in " \t\n\r\f\v")}[name]
        if self.dialect != "postgres" and name in ("d", "w"):
            return "\\p{Nd}" if name == "d" else "\\p{L}\\p{N}_"
        return "".join(self.char(low, in_class=True)
                       + (f"-{self.char(high, in_class=True)}" if high > low else "")
                       for low, high in _python_ranges(name))

    def char(self, code: int, *, in_class: bool = False) -> str:
        """One character as a literal in the target's regex syntax."""
        ch = chr(code)
        if ch in (_CLASS_SPECIAL if in_class else _SPECIAL):
            return "\\" + ch
        if (code < 128 and 32 <= code < 127) or (code >= 128 and ch.isprintable() and not ch.isspace()):
            return ch
        if self.dialect == "postgres":
            return f"\\U{code:08x}"
        return f"\\x{{{code:x}}}"


_SPECIAL = "\\.^$|?*+()[]{}"
_CLASS_SPECIAL = "\\]^-["
_ENGINE = {"duckdb": "DuckDB (RE2)", "postgres": "Postgres regular expressions",
           "mysql": "MariaDB/MySQL REGEXP"}
_CATEGORY_NAMES = {_c.CATEGORY_DIGIT: "d", _c.CATEGORY_WORD: "w", _c.CATEGORY_SPACE: "s"}
_POSITIVE = set(_CATEGORY_NAMES)
_NEGATED = {_c.CATEGORY_NOT_DIGIT: _c.CATEGORY_DIGIT, _c.CATEGORY_NOT_WORD: _c.CATEGORY_WORD,
            _c.CATEGORY_NOT_SPACE: _c.CATEGORY_SPACE}
_AT_NAMES = {_c.AT_BEGINNING: "^", _c.AT_BEGINNING_STRING: "\\A", _c.AT_END: "$", _c.AT_END_STRING: "\\Z",
             _c.AT_BOUNDARY: "\\b", _c.AT_NON_BOUNDARY: "\\B"}
_OP_NAMES = {"GROUPREF": "a back-reference", "GROUPREF_EXISTS": "a conditional group (?(1)...)",
             "ASSERT": "a look-ahead/look-behind", "ASSERT_NOT": "a negative look-ahead/look-behind",
             "ATOMIC_GROUP": "an atomic group (?>...)", "POSSESSIVE_REPEAT": "a possessive quantifier"}


@lru_cache(maxsize=None)
def _case_groups() -> dict[str, set[int]]:
    """Code points grouped by their lower- and upper-cased forms (candidates for case variants)."""
    groups: dict[str, set[int]] = {}
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        for key in {ch.lower(), ch.upper(), ch.casefold()}:
            if key != ch or ch.lower() != ch.upper():
                groups.setdefault(key, set()).add(code)
    return groups


@lru_cache(maxsize=4096)
def _case_variants(code: int, ascii_only: bool) -> list[int]:
    ch = chr(code)
    groups = _case_groups()
    candidates = {code}
    for key in {ch.lower(), ch.upper(), ch.casefold()}:
        candidates |= groups.get(key, set())
    flags = re.IGNORECASE | (re.ASCII if ascii_only else 0)
    probe = re.compile(re.escape(ch), flags)
    return sorted(c for c in candidates if probe.fullmatch(chr(c)))


@lru_cache(maxsize=None)
def _python_ranges(name: str) -> tuple[tuple[int, int], ...]:
    """The code-point ranges Python's ``re`` matches with ``\\d``, ``\\w`` or ``\\s`` (Unicode mode)."""
    probe = re.compile(f"\\{name}")
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and probe.fullmatch(chr(code)) is not None
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            ranges.append((start, code - 1))
            start = None
    return tuple(ranges)
