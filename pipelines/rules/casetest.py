"""The embedded test runner: each case of a rule builds a scratch warehouse from its rows, runs
the rule through the real engine and compares the hits with ``expect``.

Rules that read the link stage's tables (``person_links``, ``identity_clusters``, ...) get them
computed from the case rows by :func:`pipelines.linking.link_persons`, in the case's own session,
or (``link_engine``) in another engine's session over the same rows, the tables then handed to the
case's session as Arrow: the rule's SQL still runs on the case's engine. The test suite links
Spark cases on DuckDB so that they take seconds, not minutes of link-stage Spark jobs each; Spark
linking itself is checked end to end (tests/e2e/test_engines_agree.py).

The hit set must match exactly (no missing, no extra subjects); for each expected hit the
amount is compared as exact text (``'8123.40'``, or null), and first/last period, region code
and ``reason_contains`` / ``reason_lacks`` / ``evidence_contains`` fragments when the case gives them.
"""

from __future__ import annotations

import json
import tempfile

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipelines.engine import Engine
from pipelines.errors import RuleError, RuleTestFailure
from pipelines.rules.engine import run_rules
from pipelines.rules.model import Case, Rule
from pipelines.rules.scratch import CaseDataError, make_scratch_db
from pipelines.rules.sqlcheck import DERIVED_TABLES


@dataclass
class CaseResult:
    """Outcome of one embedded test case."""

    rule_id: str
    case: str
    line: int | None
    passed: bool
    problems: list[str] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)


def _compare(case: Case, hits: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    got = {h["subject_id"]: h for h in hits}
    want = {e.subject_id: e for e in case.expect}
    for sid in sorted(set(want) - set(got)):
        problems.append(f"expected a hit for {sid}, got none")
    for sid in sorted(set(got) - set(want)):
        h = got[sid]
        problems.append(f"unexpected hit for {sid} (amount {h['amount_at_risk']}, {h['first_period']}..{h['last_period']})")
    for sid in sorted(set(want) & set(got)):
        e, h = want[sid], got[sid]
        amount = None if h["amount_at_risk"] is None else f"{h['amount_at_risk']:.2f}"
        if amount != e.amount_at_risk:
            problems.append(f"{sid}: amount_at_risk {amount}, expected {e.amount_at_risk}")
        for key in ("first_period", "last_period", "region_code"):
            expected = getattr(e, key)
            if expected is not None and h[key] != expected:
                problems.append(f"{sid}: {key} {h[key]!r}, expected {expected!r}")
        for fragment in e.reason_contains:
            if fragment not in (h["reason"] or ""):
                problems.append(f"{sid}: reason lacks {fragment!r}: {h['reason']}")
        for fragment in e.reason_lacks:
            if fragment in (h["reason"] or ""):
                problems.append(f"{sid}: reason has {fragment!r}: {h['reason']}")
        if e.evidence_contains:
            evidence = h["evidence"] if isinstance(h["evidence"], str) else json.dumps(h["evidence"], default=str)
            compact = json.dumps(json.loads(evidence), ensure_ascii=False, separators=(",", ":"))
            for fragment in e.evidence_contains:
                if fragment not in compact:
                    problems.append(f"{sid}: evidence lacks {fragment!r}: {compact}")
    return problems


EngineFactory = Callable[[], Engine]


def _link(con: Engine, case: Case, link_engine: EngineFactory | None, folder: Path) -> None:
    """The link stage over the case rows: in ``con`` itself, or in a fresh ``link_engine`` session
    whose link tables are written as Parquet into ``folder`` and registered in ``con`` (as a run
    hands its derived/ link tables to the detect stage)."""
    from pipelines.linking import link_persons
    from pipelines.linking.schema import LINK_TABLES

    if link_engine is None:
        link_persons(con)  # the link stage, as a run does between load and detect
        return
    other = make_scratch_db(case.tables, link_engine())
    try:
        link_persons(other)
        for name in LINK_TABLES:
            other.write_parquet(f"SELECT * FROM {name}", folder / f"{name}.parquet")
            con.register(name, [folder / f"{name}.parquet"])
    finally:
        other.close()


def run_case(rule: Rule, index: int, engine: EngineFactory | None = None,
             link_engine: EngineFactory | None = None) -> CaseResult:
    """Run the rule's ``index``-th case; problems (wrong hits, bad case data, rule errors) are
    reported in the result, not raised. ``engine`` makes the fresh engine session the case runs
    in (default: in-memory DuckDB); the session is closed afterwards. ``link_engine``: where the
    link tables of a rule that reads them are computed (default: the case's own session)."""
    case = rule.tests[index]
    line = rule.line_of("tests", index)
    result = CaseResult(rule.id, case.name, line, passed=False)
    try:
        con = make_scratch_db(case.tables, engine() if engine is not None else None)
    except CaseDataError as exc:
        result.problems.append(f"bad case data: {exc}")
        return result
    try:
        with tempfile.TemporaryDirectory(prefix="fw-case-links-") as folder:
            if set(rule.requires) & set(DERIVED_TABLES):
                _link(con, case, link_engine, Path(folder))
            run = run_rules(con, [rule], case.as_of, {rule.id: case.parameters} if case.parameters else None)
    except RuleError as exc:
        result.problems.append(f"rule failed: {exc}")
        return result
    finally:
        con.close()
    if run.skipped:
        result.problems.append(f"rule was skipped: missing {', '.join(run.skipped[0].missing)}")
        return result
    result.hits = run.table.to_pylist()
    result.problems = _compare(case, result.hits)
    result.passed = not result.problems
    return result


def run_rule_cases(rule: Rule, engine: EngineFactory | None = None) -> list[CaseResult]:
    """Run every embedded case of ``rule`` (each in a fresh session made by ``engine``)."""
    return [run_case(rule, i, engine) for i in range(len(rule.tests))]


def assert_rule_cases(rule: Rule, engine: EngineFactory | None = None) -> None:
    """Run the cases and raise :class:`RuleTestFailure` (file, line of the case, rule) on the first failure."""
    for result in run_rule_cases(rule, engine):
        if not result.passed:
            raise RuleTestFailure(
                f"test case {result.case!r} failed: " + "; ".join(result.problems),
                file=rule.path,
                line=result.line,
                rule=rule.id,
                hint="fix the rule or the case's expectations",
            )
