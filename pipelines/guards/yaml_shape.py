"""YAML shape checks before a document is built: size, nesting depth and alias expansion.

PyYAML composes nested collections recursively (a deep file ends in a RecursionError) and shares
aliased values, so a few hundred bytes of anchors ("billion laughs") become billions of values
as soon as anything walks them (validation, ``repr``). Both are refused here with the limit named.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.errors import ConfigError
from pipelines.limits import Limits, show_bytes

_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def check_size(path: Path, size: int, limits: Limits, error: type[ConfigError]) -> None:
    if size > limits.yaml_max_bytes:
        raise error(f"the file is {show_bytes(size)}, more than the limit of {show_bytes(limits.yaml_max_bytes)} "
                    "(limits.yaml_max_bytes)", file=path, hint="a rule or contract file is a few KB; check it is the right file")


def check_depth(text: str, path: Path, loader_class: type, limits: Limits, error: type[ConfigError]) -> None:
    """Nesting depth from the event stream (the parser is not recursive, the composer is)."""
    loader = loader_class(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _OPEN):
                depth += 1
                if depth > limits.yaml_max_depth:
                    raise error(f"nested more than {limits.yaml_max_depth} levels deep (limits.yaml_max_depth)",
                                file=path, line=event.start_mark.line + 1,
                                hint="rules and contracts need a few levels; flatten the structure")
            elif isinstance(event, _CLOSE):
                depth -= 1
    except yaml.MarkedYAMLError:
        return  # the real load reports syntax errors with their line
    finally:
        loader.dispose()


def check_expansion(node: yaml.Node, path: Path, limits: Limits, error: type[ConfigError]) -> None:
    """Values the document stands for once aliases are expanded, and its expanded depth; a
    recursive alias is refused. Iterative, memoised per node: linear in the file's size."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        children = _children(current)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > limits.yaml_max_nodes:
                raise error(f"the document expands to more than {limits.yaml_max_nodes:,} values through "
                            "aliases (limits.yaml_max_nodes)", file=path, line=current.start_mark.line + 1,
                            hint="a YAML anchor (&x) repeated through aliases (*x) multiplies; write the values out")
            if depth[key] > limits.yaml_max_depth + 1:
                raise error(f"nested more than {limits.yaml_max_depth} levels deep through aliases "
                            "(limits.yaml_max_depth)", file=path, line=current.start_mark.line + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            raise error("an alias refers to a value that contains it (a recursive alias)", file=path,
                        line=current.start_mark.line + 1, hint="remove the recursive alias")
        on_path.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
