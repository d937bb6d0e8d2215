"""YAML from files users write (contracts, Markdown-KV front matter), read safely even when hostile.

A few kilobytes of YAML can describe billions of nodes: an anchor holding ten aliases of an anchor
holding ten aliases ... ("billion laughs"). PyYAML's composer shares the aliased node, but everything
after it (line mapping, merge keys, validation, writing values out) walks the expanded tree and runs
out of time and memory. So :func:`check_limits` first reads the document's events (libyaml's when
available) and measures every node -- its expanded size and height, aliases included -- in time
linear in the text, and refuses the document *before* any composer or constructor expands it:

* more than :attr:`YamlLimits.max_chars` characters;
* nesting deeper than :attr:`YamlLimits.max_depth`, counting what aliases bring in;
* more than :attr:`YamlLimits.max_aliases` aliases (``*name``), or aliases that would add more than
  :attr:`YamlLimits.max_alias_nodes` nodes in total;
* more than :attr:`YamlLimits.max_nodes` nodes in all, aliases expanded;
* an alias to its own enclosing node (a recursive structure).

Only then is the document composed -- by libyaml when PyYAML has it, with PyYAML's own wording for
syntax errors either way. Refusals raise :class:`YamlLimitError`, a :class:`yaml.MarkedYAMLError`, so
callers that already report YAML errors with their line report these the same way; their messages
never quote the document.

Loaders: :class:`SafeYamlLoader` (YAML 1.1 types, as ``yaml.safe_load``), :class:`ContractYamlLoader`
(the same with dates kept as strings) and :class:`CoreSchemaLoader` (YAML 1.2 core schema).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import yaml
from yaml.nodes import Node, ScalarNode

__all__ = [
    "DEFAULT_LIMITS",
    "ContractYamlLoader",
    "CoreSchemaLoader",
    "SafeYamlLoader",
    "YamlLimitError",
    "YamlLimits",
    "check_limits",
    "compose",
    "load",
    "load_core_schema",
]


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML document. The defaults leave room for any real contract many times over.

    :param max_chars: the document's length in characters.
    :param max_depth: nesting of mappings and sequences, counting the nodes aliases bring in.
    :param max_aliases: alias uses (``*name``); 0 refuses every alias.
    :param max_alias_nodes: nodes that aliases bring in, in total (an alias to a 20-node mapping
        brings in 20).
    :param max_nodes: scalars, mappings and sequences in the document, aliases expanded.
    """

    max_chars: int = 1_000_000
    max_depth: int = 64
    max_aliases: int = 100
    max_alias_nodes: int = 10_000
    max_nodes: int = 100_000


DEFAULT_LIMITS = YamlLimits()


class YamlLimitError(yaml.MarkedYAMLError):
    """The document exceeds a :class:`YamlLimits` bound. ``problem_mark.line`` is 0-based, as in PyYAML."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)

    def __str__(self) -> str:
        where = f" (line {self.problem_mark.line + 1})" if self.problem_mark else ""
        return f"{self.problem}{where}"


class _Budget:
    """The limits applied to one document's event stream, before a composer builds anything.

    Every node is measured as its events go by: its expanded size and height, aliases included (an
    alias counts as the whole node it names). Work is linear in the number of events, whatever the
    aliases would expand to.
    """

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.aliases = 0
        self.alias_nodes = 0
        self.nodes = 0
        self.open: list[list[int]] = []  # per open collection: [size, height]
        self.open_anchors: list[str | None] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # complete anchored nodes: (size, height)

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(self.open) >= self.limits.max_depth:
                raise YamlLimitError(f"nesting deeper than {self.limits.max_depth} levels", event.start_mark)
            self._count(1, event.start_mark)
            self.anchors.pop(event.anchor or "", None)
            self.open.append([1, 1])
            self.open_anchors.append(event.anchor)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            size, height = self.open.pop()
            self._complete(self.open_anchors.pop(), size, height)
        elif isinstance(event, yaml.ScalarEvent):
            self._count(1, event.start_mark)
            self._complete(event.anchor, 1, 1)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self.anchors.clear()

    def _count(self, nodes: int, mark: Any) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise YamlLimitError(f"more than {self.limits.max_nodes:,} YAML nodes (values, lists and "
                                 "mappings, aliases expanded)", mark)

    def _complete(self, anchor: str | None, size: int, height: int) -> None:
        if anchor is not None:
            self.anchors[anchor] = (size, height)
        if self.open:
            parent = self.open[-1]
            parent[0] += size
            parent[1] = max(parent[1], height + 1)

    def _alias(self, event: yaml.AliasEvent) -> None:
        limits, mark = self.limits, event.start_mark
        self.aliases += 1
        if limits.max_aliases == 0:
            raise YamlLimitError("YAML aliases (*name) are not supported here", mark)
        if self.aliases > limits.max_aliases:
            raise YamlLimitError(f"more than {limits.max_aliases} YAML aliases (*name)", mark)
        if event.anchor in self.open_anchors:
            raise YamlLimitError("a YAML alias refers to a node that contains it (a recursive structure)", mark)
        if event.anchor not in self.anchors:
            return  # the composer reports the undefined alias
        size, height = self.anchors[event.anchor]
        self.alias_nodes += size
        if self.alias_nodes > limits.max_alias_nodes:
            raise YamlLimitError(
                f"YAML aliases expand to more than {limits.max_alias_nodes:,} nodes (an alias bomb?)", mark
            )
        if len(self.open) + height > limits.max_depth:
            raise YamlLimitError(f"nesting deeper than {limits.max_depth} levels (through an alias)", mark)
        self._count(size, mark)
        self._complete(None, size, height)


def check_limits(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> None:
    """Refuse ``text`` if it is over ``limits``, reading only its events (libyaml's when available).

    :raises YamlLimitError: over a limit.
    :raises yaml.YAMLError: not YAML (with PyYAML's own message, the same with or without libyaml).
    """
    if len(text) > limits.max_chars:
        raise YamlLimitError(f"the YAML is {len(text):,} characters long; the limit is {limits.max_chars:,}", None)
    budget = _Budget(limits)
    try:
        for event in yaml.parse(text, Loader=_FAST_BASE):
            budget.feed(event)
    except YamlLimitError:
        raise
    except yaml.YAMLError as exc:
        if _FAST_BASE is yaml.SafeLoader:
            raise
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml stops at 1000 levels
            raise YamlLimitError(f"nesting deeper than {limits.max_depth} levels",
                                 getattr(exc, "problem_mark", None)) from None
        # libyaml words its errors differently; report PyYAML's (the text is bounded, events are cheap).
        budget = _Budget(limits)
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            budget.feed(event)
        raise


#: libyaml's parser when PyYAML was built with it (~10x faster), else the pure-Python one.
_FAST_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class SafeYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1 types); read through :func:`compose` or :func:`load`."""

    limits: YamlLimits = DEFAULT_LIMITS


class ContractYamlLoader(SafeYamlLoader):
    """Contracts: YAML 1.1 types, except that dates and timestamps stay strings, as ODCS declares them."""


ContractYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema tags for plain scalars."""

    yaml_implicit_resolvers: dict[Any, Any] = {}


_CORE_RESOLVERS = (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
)
for _tag, _pattern, _first in _CORE_RESOLVERS:  # int before float: "12" matches both patterns
    _CoreResolver.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _CoreConstructor(yaml.constructor.SafeConstructor):
    def construct_core_int(self, node: ScalarNode) -> int | str:
        text = str(self.construct_scalar(node))
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        if re.fullmatch(r"[-+]?0[0-9]+", text):
            return text  # a leading zero is part of the value (zip codes, ids): keep the digits
        return int(text)


cast(Any, _CoreConstructor).add_constructor("tag:yaml.org,2002:int", _CoreConstructor.construct_core_int)


class CoreSchemaLoader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
    _CoreConstructor, _CoreResolver,
):
    """YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal, ``0o`` and ``0x`` integers, floats.

    No YAML 1.1 surprises: ``yes``/``on`` are strings, ``10:30`` is not 630, ``01234`` is not octal 668,
    ``2024-03-01`` is a string. One deviation keeps digits: an integer written with a leading zero
    (``01234``, a zip code) stays the string as written rather than becoming 1234.
    """

    limits: YamlLimits = DEFAULT_LIMITS

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _CoreConstructor.__init__(self)
        _CoreResolver.__init__(self)


def _fast_twin(loader_class: type[Any]) -> type[Any]:
    """The same resolvers and constructors over libyaml's parser and composer (~5x faster)."""
    if not yaml.__with_libyaml__:  # pragma: no cover - PyYAML without libyaml
        return loader_class
    c_parser: Any = getattr(yaml.cyaml, "CParser")  # noqa: B009 (not re-exported in the stubs)
    parts = [c for c in loader_class.__mro__ if not issubclass(c, yaml.reader.Reader)]  # not the loaders
    constructor = next(c for c in parts if issubclass(c, yaml.constructor.BaseConstructor))
    resolver = next(c for c in parts if issubclass(c, yaml.resolver.BaseResolver))

    class Twin(c_parser, constructor, resolver):  # type: ignore[valid-type, misc]
        limits = loader_class.limits
        yaml_implicit_resolvers = loader_class.yaml_implicit_resolvers
        yaml_constructors = loader_class.yaml_constructors

        def __init__(self, stream: str) -> None:
            c_parser.__init__(self, stream)
            constructor.__init__(self)
            resolver.__init__(self)

    Twin.__name__ = Twin.__qualname__ = f"Fast{loader_class.__name__}"
    return Twin


_FAST_TWINS: dict[type[Any], type[Any]] = {
    cls: _fast_twin(cls) for cls in (SafeYamlLoader, ContractYamlLoader, CoreSchemaLoader)
}


def compose(
    text: str, loader_class: type[Any] = SafeYamlLoader, limits: YamlLimits | None = None
) -> tuple[Node | None, Any]:
    """The root node of the single document in ``text`` (None if empty) and the loader, to construct it.

    ``text`` is checked against ``limits`` (default: ``loader_class.limits``) first, then composed by
    libyaml when PyYAML has it. Call ``loader.construct_document(node)``, then ``loader.dispose()``.
    A plain scalar's node has ``style`` None or ``""`` (libyaml).

    :raises YamlLimitError: the text is over a limit.
    :raises yaml.YAMLError: the text is not YAML (in PyYAML's words, with or without libyaml).
    """
    check_limits(text, limits or loader_class.limits)
    for attempt in (_FAST_TWINS.get(loader_class, loader_class), loader_class):
        loader = attempt(text)
        try:
            return loader.get_single_node(), loader
        except yaml.YAMLError:
            loader.dispose()
            if attempt is loader_class:
                raise
        except BaseException:
            loader.dispose()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def load(text: str, loader_class: type[Any] = SafeYamlLoader, limits: YamlLimits | None = None) -> Any:
    """The single document in ``text`` as Python data (None if empty), within ``limits``.

    :raises YamlLimitError: the text is over a limit (default: ``loader_class.limits``).
    :raises yaml.YAMLError: the text is not YAML.
    """
    node, loader = compose(text, loader_class, limits)
    try:
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def load_core_schema(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """The single document in ``text`` read with the YAML 1.2 core schema (:class:`CoreSchemaLoader`).

    :raises YamlLimitError: over ``limits``.
    :raises yaml.YAMLError: not YAML (with PyYAML's message).
    """
    return load(text, CoreSchemaLoader, limits)
