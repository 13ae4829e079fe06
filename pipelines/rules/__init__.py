"""Detection rules: YAML files (``rules/<id>.yaml``) → typed models → checked DuckDB SQL → hits.

Public entry points:

- :func:`load_rules` / :func:`load_rule` — read rule files (errors name file and line)
- :func:`lint_rules` — every static check without running
- :func:`run_rules` — run rules against the warehouse, returns :class:`RunHits`
- :func:`run_rule_cases` — run a rule's embedded test cases in a scratch warehouse
- :func:`to_spark_sql` — a rule's query in Spark SQL
- :func:`check_query` — the SQL safety check on its own
"""

from pipelines.rules.casetest import CaseResult, assert_rule_cases, run_rule_cases
from pipelines.rules.engine import HITS_SCHEMA, RuleRun, RunHits, lint_rules, run_rules, to_spark_sql
from pipelines.rules.loader import DEFAULT_RULES_DIR, load_rule, load_rules
from pipelines.rules.model import Rule
from pipelines.rules.scratch import make_scratch_db
from pipelines.rules.sqlcheck import CheckedQuery, check_query, check_rule_sql

__all__ = [
    "CaseResult", "CheckedQuery", "DEFAULT_RULES_DIR", "HITS_SCHEMA", "Rule", "RuleRun", "RunHits",
    "assert_rule_cases", "check_query", "check_rule_sql", "lint_rules", "load_rule", "load_rules",
    "make_scratch_db", "run_rule_cases", "run_rules", "to_spark_sql",
]
