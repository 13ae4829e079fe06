"""Check a run's request before any work: every mistake is refused at once, with the valid values.

`check_request` looks at everything a run is asked to do (landing folder, rule ids, categories,
rule parameters and their types, memory limit, job name, wait time) and raises one
:class:`RunError` listing every problem found. It reads only the landing folder's listing, the
contracts and the rule files: no extract is read, nothing is written. `fraudwatch run`, the
stage-function run and the Prefect flow all call it first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipelines.errors import FraudwatchError, RunError

from pipelines.jobs import JOB_NAME
MEMORY_LIMIT = re.compile(r"\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


def require_paths(input: str | None, output: str | None) -> None:
    """Refuse empty landing/output paths (a deployment made with FRAUDWATCH_LANDING/OUTPUT unset)."""
    problems = []
    if not (input or "").strip():
        problems.append("input folder is empty: pass the landing folder (--input, or FRAUDWATCH_LANDING for deployments)")
    if not (output or "").strip():
        problems.append("output folder is empty: pass the output folder (--output, or FRAUDWATCH_OUTPUT for deployments)")
    if problems:
        raise RunError("the run was refused before any work:\n  - " + "\n  - ".join(problems),
                       hint="set FRAUDWATCH_LANDING and FRAUDWATCH_OUTPUT and run `prefect deploy --all` again")


def check_request(config: Any) -> list:
    """Every problem of a run's request (a :class:`pipelines.pipeline.RunConfig`), raised at once.

    Returns the rules the run will use. Raises :class:`RunError` with one line per problem.
    """
    from pipelines.contracts import load_contracts
    from pipelines.ingest import discover_extracts
    from pipelines.rules.loader import load_rules
    from pipelines.rules.model import coerce_param

    problems: list[str] = []
    if not JOB_NAME.fullmatch(config.job or ""):
        problems.append(f"job name {config.job!r}: use lower-case letters, digits, - and _ (e.g. death-check)")
    if config.wait_timeout is None or config.wait_timeout < 0:
        problems.append(f"wait timeout {config.wait_timeout!r}: seconds, 0 or more")
    if config.memory_limit is not None and not MEMORY_LIMIT.fullmatch(str(config.memory_limit)):
        problems.append(f"memory limit {config.memory_limit!r}: a number and a unit, e.g. 16GB, 512MB, 8GiB")
    landing = Path(config.input)
    try:
        contracts = load_contracts(config.contracts_dir)
    except FraudwatchError as exc:
        raise RunError(f"the data contracts cannot be loaded: {exc}", file=config.contracts_dir) from None
    if not landing.is_dir():
        problems.append(f"input folder {landing} does not exist (or is not a folder)")
    elif not discover_extracts(landing, contracts):
        problems.append(f"input folder {landing} holds no extract: file names must start with an extract name "
                            f"({', '.join(sorted(contracts))}), e.g. pension_payments_202401.csv")
    try:
        rules = [r for r in load_rules(config.rules_dir, check_sql=False) if r.status != "deprecated"]
    except FraudwatchError as exc:
        raise RunError(f"the rules cannot be loaded: {exc}", file=config.rules_dir) from None
    by_id = {r.id: r for r in rules}
    valid_ids = ", ".join(sorted(by_id))
    categories = sorted({r.category for r in rules})
    unknown = sorted(set(config.rule_ids) - set(by_id))
    if unknown:
        problems.append(f"unknown rule id(s): {', '.join(unknown)}; valid: {valid_ids}")
    bad_categories = sorted(set(config.categories) - set(categories))
    if bad_categories:
        problems.append(f"unknown categor(y/ies): {', '.join(bad_categories)}; valid: {', '.join(categories)}")
    for rule_id, values in sorted((config.parameters or {}).items()):
        rule = by_id.get(rule_id)
        if rule is None:
            problems.append(f"parameter for unknown rule {rule_id!r}; valid rule ids: {valid_ids}")
            continue
        for name, value in sorted(values.items()):
            declared = rule.parameters.get(name)
            if declared is None:
                valid = ", ".join(f"{n} ({p.type.value})" for n, p in sorted(rule.parameters.items())) or "(none)"
                problems.append(f"rule {rule_id} has no parameter {name!r}; its parameters: {valid}")
                continue
            try:
                coerce_param(declared.type, value)
            except ValueError as exc:
                problems.append(f"parameter {rule_id}.{name} ({declared.type.value}): {exc}")
    selected = [r for r in rules if (not config.rule_ids or r.id in config.rule_ids)
                and (not config.categories or r.category in config.categories)]
    if not problems and not selected:
        problems.append(f"no rule matches both --rules {', '.join(config.rule_ids)} and --category "
                        f"{', '.join(config.categories)}; nothing would be checked")
    if problems:
        raise RunError("the run was refused before any work:\n  - " + "\n  - ".join(problems),
                       hint="`fraudwatch rules list` shows every rule with its category")
    return selected
