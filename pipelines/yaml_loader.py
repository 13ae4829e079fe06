"""YAML at the boundary: safe loading that rejects duplicate keys, remembers the
line of every mapping key, and turns pydantic errors into errors naming file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.errors import ConfigError
from pipelines.guards.yaml_shape import check_depth, check_expansion, check_size
from pipelines.limits import current as current_limits

M = TypeVar("M", bound=BaseModel)


class LineMap(dict):
    """A dict that also knows the 1-based line of each of its keys (``.lines``)."""

    lines: dict[str, int]
    line: int


class LineList(list):
    line: int


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> LineMap:
    result = LineMap()
    result.lines = {}
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise ConfigError(
                f"duplicate key {key!r} (first at line {result.lines[key]})",
                file=loader.name,
                line=key_node.start_mark.line + 1,
                hint="each key may appear once in a mapping; remove or rename one of them",
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode, deep: bool = False) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | Path, error: type[ConfigError] = ConfigError) -> Any:
    """Load one YAML document; duplicate keys and syntax errors raise ``error`` naming the line."""
    path = Path(path)
    limits = current_limits()
    try:
        check_size(path, path.stat().st_size, limits, error)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise error(f"the file is not UTF-8 text (bad byte at offset {exc.start})", file=path) from None
    check_depth(text, path, _Loader, limits, error)
    loader = _Loader(text)
    loader.name = str(path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_expansion(node, path, limits, error)
        return loader.construct_document(node)
    except RecursionError:
        raise error("the document is nested too deeply to read", file=path,
                    hint="rules and contracts need a few levels; flatten the structure") from None
    except ConfigError as exc:
        raise error(exc.message, file=path, line=exc.line, hint=exc.hint) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise error(f"not valid YAML: {exc.problem}", file=path, line=line) from None
    finally:
        loader.dispose()


def line_of(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Best line for a pydantic error location inside data loaded by :func:`load_yaml`."""
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, LineMap) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
        else:
            break
    return line


def parse_model(model: type[M], data: Any, path: str | Path, error: type[ConfigError] = ConfigError) -> M:
    """Validate loaded YAML into ``model``; the first problem is raised with its line."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise error(f"{field}: {msg}{suffix}", file=path, line=line_of(data, loc)) from None


def load_model(model: type[M], path: str | Path, error: type[ConfigError] = ConfigError) -> M:
    """Load a YAML file straight into a typed model."""
    return parse_model(model, load_yaml(path, error), path, error)
