"""Loading rule files: YAML → typed :class:`Rule`, with errors naming file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pipelines import limits
from pipelines.errors import RuleError
from pipelines.rules.model import Rule
from pipelines.yaml_loader import load_yaml, parse_model

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent.parent / "rules"


def load_rule(path: str | Path) -> Rule:
    """Load one rule file. Duplicate keys, unknown keys, missing fields, bad values and a file
    name that differs from the rule id raise :class:`RuleError` naming file and line."""
    path = Path(path)
    data = load_yaml(path, RuleError)
    if not isinstance(data, dict):
        raise RuleError("a rule file must be a mapping of keys to values", file=path, line=1)
    rule = parse_model(Rule, data, path, RuleError)
    rule._path = path
    rule._raw = data
    if path.stem != rule.id:
        raise RuleError(
            f"file name {path.name!r} does not match rule id {rule.id!r}",
            file=path,
            line=rule.line_of("id"),
            rule=rule.id,
            hint=f"one file per rule: rename the file to {rule.id}.yaml",
        )
    from pipelines.rules.reason import placeholders

    try:
        placeholders(rule.reason)
    except ValueError as exc:
        raise RuleError(f"reason: {exc}", file=path, line=rule.line_of("reason"), rule=rule.id) from None
    return rule


def rule_files(directory: str | Path) -> list[Path]:
    """The rule files under ``directory`` (``*.yaml`` / ``*.yml``, sub-folders included), sorted."""
    directory = Path(directory)
    return sorted({*directory.rglob("*.yaml"), *directory.rglob("*.yml")})


def load_rules(directory: str | Path = DEFAULT_RULES_DIR, *, check_sql: Iterable[str] | bool = True) -> list[Rule]:
    """Load every rule under ``directory``, sorted by id.

    Two files with the same rule id raise :class:`RuleError` naming both files. With
    ``check_sql`` (True = the default warehouse names, or an explicit list of table names)
    each query also passes the SQL safety check.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RuleError("rules folder not found", file=directory, hint="point --rules at the folder of rule files")
    files = rule_files(directory)
    key = (tuple((str(p.resolve()), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]),
           check_sql if isinstance(check_sql, bool) else frozenset(check_sql), limits.current())
    if key in _LOADED:  # a run loads its rules several times (checks, link, detect): parse the files once
        return list(_LOADED[key])
    rules = _load(directory, files, check_sql)
    if len(_LOADED) >= 8:
        _LOADED.clear()
    _LOADED[key] = tuple(rules)
    return rules


# Rule sets loaded by this process: their files (path, size, mtime), check_sql and limits -> the rules.
_LOADED: dict[tuple, tuple[Rule, ...]] = {}


def _load(directory: Path, files: list[Path], check_sql: Iterable[str] | bool) -> list[Rule]:
    seen: dict[str, Rule] = {}
    for path in files:
        rule = load_rule(path)
        if rule.id in seen:
            first = seen[rule.id]
            raise RuleError(
                f"rule id {rule.id!r} is defined twice: in {first.path} (line {first.line_of('id')}) and here",
                file=path,
                line=rule.line_of("id"),
                rule=rule.id,
                hint="rule ids are stable and unique; rename or remove one of the files",
            )
        seen[rule.id] = rule
    rules = [seen[k] for k in sorted(seen)]
    if check_sql is not False:
        from pipelines.rules.sqlcheck import check_rule_sql, default_table_names

        warehouse = default_table_names() if check_sql is True else frozenset(check_sql)
        for rule in rules:
            unknown = sorted(set(rule.requires) - warehouse)
            if unknown:
                raise RuleError(
                    f"requires names unknown table(s): {', '.join(unknown)}",
                    file=rule.path,
                    line=rule.line_of("requires"),
                    rule=rule.id,
                    hint=f"warehouse tables and views: {', '.join(sorted(warehouse))}",
                )
            check_rule_sql(rule)
    return rules
