"""YAML from files users write (contracts, Markdown-KV front matter), read safely even when hostile.

A few kilobytes of YAML can describe billions of nodes: an anchor holding ten aliases of an anchor
holding ten aliases ... ("billion laughs"). PyYAML's composer shares the aliased node, but everything
after it (line mapping, merge keys, validation, writing values out) walks the expanded tree and runs
out of time and memory. So the composer here measures every node as it is built -- its expanded
size and height, aliases included -- and refuses the document *before* anything expands it:

* more than :attr:`YamlLimits.max_chars` characters;
* nesting deeper than :attr:`YamlLimits.max_depth`, counting what aliases bring in;
* more than :attr:`YamlLimits.max_aliases` aliases (``*name``), or aliases that would add more than
  :attr:`YamlLimits.max_alias_nodes` nodes in total;
* an alias to its own enclosing node (a recursive structure).

Refusals raise :class:`YamlLimitError`, a :class:`yaml.MarkedYAMLError`, so callers that already
report YAML errors with their line report these the same way. Messages never quote the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "DEFAULT_LIMITS",
    "CoreSchemaLoader",
    "ContractYamlLoader",
    "SafeYamlLoader",
    "YamlLimitError",
    "YamlLimits",
    "compose",
    "load",
]


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one YAML document. The defaults leave room for any real contract many times over.

    :param max_chars: the document's length in characters.
    :param max_depth: nesting of mappings and sequences, counting the nodes aliases bring in.
    :param max_aliases: alias uses (``*name``); 0 refuses every alias.
    :param max_alias_nodes: nodes that aliases bring in, in total (an alias to a 20-node mapping
        brings in 20).
    """

    max_chars: int = 1_000_000
    max_depth: int = 64
    max_aliases: int = 100
    max_alias_nodes: int = 10_000


DEFAULT_LIMITS = YamlLimits()


class YamlLimitError(yaml.MarkedYAMLError):
    """The document exceeds a :class:`YamlLimits` bound. ``problem_mark.line`` is 0-based, as in PyYAML."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)

    def __str__(self) -> str:
        where = f" (line {self.problem_mark.line + 1})" if self.problem_mark else ""
        return f"{self.problem}{where}"


class _BoundedComposer:
    """Composer mixin: measures each node while composing and refuses documents over the limits."""

    limits: YamlLimits = DEFAULT_LIMITS

    def _start_bounds(self) -> None:
        self._depth = 0
        self._aliases = 0
        self._alias_nodes = 0
        # id(node) -> (expanded size, expanded height); a node is in here once it is complete.
        self._measured: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()  # type: ignore[attr-defined]
        if isinstance(event, yaml.AliasEvent):
            self._check_alias(event)
            return super().compose_node(parent, index)  # type: ignore[misc]
        if self._depth >= self.limits.max_depth:
            raise YamlLimitError(f"nesting deeper than {self.limits.max_depth} levels", event.start_mark)
        self._depth += 1
        try:
            node: Node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        self._measured[id(node)] = self._measure(node)
        return node

    def _check_alias(self, event: yaml.AliasEvent) -> None:
        limits, mark = self.limits, event.start_mark
        self._aliases += 1
        if limits.max_aliases == 0:
            raise YamlLimitError("YAML aliases (*name) are not supported here", mark)
        if self._aliases > limits.max_aliases:
            raise YamlLimitError(f"more than {limits.max_aliases} YAML aliases (*name)", mark)
        target = self.anchors.get(event.anchor)  # type: ignore[attr-defined]
        if target is None:
            return  # PyYAML reports the undefined alias
        measured = self._measured.get(id(target))
        if measured is None:
            raise YamlLimitError("a YAML alias refers to a node that contains it (a recursive structure)", mark)
        size, height = measured
        self._alias_nodes += size
        if self._alias_nodes > limits.max_alias_nodes:
            raise YamlLimitError(
                f"YAML aliases expand to more than {limits.max_alias_nodes:,} nodes (an alias bomb?)", mark
            )
        if self._depth + height > limits.max_depth:
            raise YamlLimitError(f"nesting deeper than {limits.max_depth} levels (through an alias)", mark)

    def _measure(self, node: Node) -> tuple[int, int]:
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1, 1
        stats = [self._measured[id(child)] for child in children]
        return 1 + sum(size for size, _ in stats), 1 + max((height for _, height in stats), default=0)


class SafeYamlLoader(_BoundedComposer, yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1 types) with the limits of this module."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._start_bounds()


class ContractYamlLoader(SafeYamlLoader):
    """Contracts: YAML 1.1 types, except that dates and timestamps stay strings, as ODCS declares them."""


ContractYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class CoreSchemaLoader(SafeYamlLoader):
    """YAML 1.2 core schema: ``true``/``false``, ``null``/``~``, decimal, ``0o`` and ``0x`` integers, floats.

    No YAML 1.1 surprises: ``yes``/``on`` are strings, ``10:30`` is not 630, ``01234`` is not octal 668,
    ``2024-03-01`` is a string. One deviation keeps digits: an integer written with a leading zero
    (``01234``, a zip code) stays the string as written rather than becoming 1234.
    """

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
    CoreSchemaLoader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_core_int(loader: yaml.SafeLoader, node: ScalarNode) -> int | str:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    if re.fullmatch(r"[-+]?0[0-9]+", text):
        return text  # a leading zero is part of the value (zip codes, ids): keep the digits
    return int(text)


CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", _construct_core_int)


def compose(text: str, loader_class: type[SafeYamlLoader] = SafeYamlLoader) -> tuple[Node | None, SafeYamlLoader]:
    """The root node of the single document in ``text`` (None if empty) and the loader, to construct it.

    Call ``loader.construct_document(node)`` then ``loader.dispose()``.

    :raises YamlLimitError: the text is over a limit of ``loader_class.limits``.
    :raises yaml.YAMLError: the text is not YAML.
    """
    limit = loader_class.limits.max_chars
    if len(text) > limit:
        raise YamlLimitError(f"the YAML is {len(text):,} characters long; the limit is {limit:,}", None)
    loader = loader_class(text)
    try:
        return loader.get_single_node(), loader
    except BaseException:
        loader.dispose()
        raise


def load(text: str, loader_class: type[SafeYamlLoader] = SafeYamlLoader) -> Any:
    """The single document in ``text`` as Python data (None if empty), within the loader's limits.

    :raises YamlLimitError: the text is over a limit of ``loader_class.limits``.
    :raises yaml.YAMLError: the text is not YAML.
    """
    node, loader = compose(text, loader_class)
    try:
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
