"""Typed models of a rule file (``rules/<id>.yaml``).

One file holds one rule: metadata in the style of a Sigma rule, a single DuckDB-dialect
SELECT (``query``) with named parameters (``$as_of`` and the declared ``parameters``),
a Chinese ``reason`` template whose ``{column}`` placeholders name output columns, and
embedded test cases (``tests``) that build a scratch warehouse from hand-made rows.
Unknown keys are refused everywhere (``extra="forbid"``).

The file format (``rules/<id>.yaml``; the file name must be the id)::

    id: paid_after_death            # stable, [a-z][a-z0-9_]*
    version: 1                      # bump when the logic changes
    title: 死亡后仍发放养老金         # Chinese
    description: What fires, exactly, and the choices made.
    category: paid_after_death      # a suspects.md category or a new one
    severity: high                  # high | medium | low
    status: stable                  # experimental | stable | deprecated
    tags: [pension, death]
    references: [...]
    falsepositives: [...]
    author: ...
    requires: [pension_payments, person_deaths]   # exactly the tables/views the query reads
    parameters:                     # optional; bound as $deadline_days ($as_of is built in)
      deadline_days: {type: int, default: 60, description: ...}   # int | decimal | date | text
    subject_type: person            # person | firm
    query: |                        # one DuckDB SELECT returning one row per subject:
      SELECT ... AS subject_id, ... AS subject_name, ... AS region_code,
             ... AS first_period, ... AS last_period,      -- DATE (first of month) or NULL
             CAST(... AS DECIMAL(18,2)) AS amount_at_risk,  -- or NULL for risk indicators
             {...} AS evidence,                             -- STRUCT/LIST/MAP
             ... AS death_date                              -- any column the reason names
      FROM ...
    reason: "{subject_name}（身份证号{subject_id}）……合计{amount_at_risk}元。"
    tests:
      - name: fires_for_x
        as_of: 2024-07-10
        parameters: {deadline_days: 90}          # optional overrides
        tables:                                  # extract table -> rows (only needed columns)
          pension_payments:
            - {payment_id: P1, person_id: '110101195003150013', period: 2024-04, amount: '2707.80'}
        expect:                                  # [] = must not fire
          - {subject_id: '110101195003150013', amount_at_risk: '2707.80',
             first_period: 2024-04, last_period: 2024-04, region_code: '110101',
             reason_contains: ['合计2,707.80元']}
    limits: {time_seconds: 1800, memory: 8GB}    # optional: this rule's own time limit and memory cap
                                                 # (defaults and per-run overrides: pipelines/limits.py)
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
MONEY_PATTERN = re.compile(r"^-?\d{1,16}\.\d{2}$")
BUILTIN_PARAMETERS = ("as_of",)
# Columns every rule query returns (architecture.md, "Rules").
OUTPUT_COLUMNS = (
    "subject_id",
    "subject_name",
    "region_code",
    "first_period",
    "last_period",
    "amount_at_risk",
    "evidence",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Severity(str, Enum):
    high = "high"
    medium = "medium"
    low = "low"


class Status(str, Enum):
    experimental = "experimental"
    stable = "stable"
    deprecated = "deprecated"


class ParamType(str, Enum):
    int = "int"
    decimal = "decimal"
    date = "date"
    text = "text"


def coerce_param(kind: ParamType, value: Any) -> Any:
    """Turn a YAML/CLI value into the Python value bound for a parameter of type ``kind``.

    Raises ValueError with a readable message. Floats are refused for decimals (money is exact).
    """
    if value is None:
        raise ValueError("a parameter value may not be null")
    if kind is ParamType.int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value.strip())
        raise ValueError(f"{value!r} is not an integer")
    if kind is ParamType.decimal:
        if isinstance(value, bool) or isinstance(value, float):
            raise ValueError(f"{value!r}: write decimals as quoted text, e.g. '1234.50' (floats are not exact)")
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    if kind is ParamType.date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{value!r} is not text")


class Parameter(_Strict):
    """A rule parameter, bound as ``$name`` when the rule runs."""

    type: ParamType
    default: Any
    description: str

    @model_validator(mode="after")
    def _default_has_type(self) -> "Parameter":
        self.default = coerce_param(self.type, self.default)
        return self


class ExpectedHit(_Strict):
    """One hit a test case expects. Fields left out are not compared (amount always is)."""

    subject_id: str
    amount_at_risk: str | None = Field(description="exact amount as text, e.g. '8123.40'; null for risk indicators")
    first_period: str | None = Field(default=None, pattern=PERIOD_PATTERN)
    last_period: str | None = Field(default=None, pattern=PERIOD_PATTERN)
    region_code: str | None = None
    reason_contains: list[str] = Field(default_factory=list)
    reason_lacks: list[str] = Field(default_factory=list, description="fragments the reason must not contain")
    evidence_contains: list[str] = Field(
        default_factory=list, description='fragments of the evidence as compact JSON, e.g. \'"match":"invalid_id"\'')

    @field_validator("amount_at_risk")
    @classmethod
    def _exact_money(cls, value: str | None) -> str | None:
        if value is not None and not MONEY_PATTERN.match(value):
            raise ValueError(f"{value!r}: write amounts with exactly two decimals, e.g. '8123.40'")
        return value


class Case(_Strict):
    """An embedded test case: rows for a scratch warehouse, a reference date and the expected hits.

    An empty ``expect`` means the rule must not fire.
    """

    name: str = Field(min_length=1)
    description: str = ""
    as_of: date
    parameters: dict[str, Any] = Field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    expect: list[ExpectedHit]

    @model_validator(mode="after")
    def _unique_expectations(self) -> "Case":
        ids = [hit.subject_id for hit in self.expect]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"case {self.name!r} expects subject(s) {dupes} more than once")
        return self


class RuleLimits(_Strict):
    """A rule's own time limit and memory cap (defaults: the run's, see ``pipelines/limits.py``)."""

    time_seconds: float | None = Field(default=None, gt=0)
    memory: int | None = Field(default=None, gt=0, description="bytes, or text like '8GB'")

    @field_validator("memory", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        from pipelines.limits import parse_bytes

        return None if value is None else parse_bytes(value)


class Rule(_Strict):
    """A detection rule (one YAML file)."""

    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    category: str = Field(pattern=ID_PATTERN)
    severity: Severity
    status: Status
    tags: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    falsepositives: list[str] = Field(default_factory=list)
    author: str = Field(min_length=1)
    requires: list[str] = Field(min_length=1)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    subject_type: Literal["person", "firm"]
    query: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    tests: list[Case] = Field(min_length=1)
    limits: RuleLimits | None = None

    # Where the rule came from, for error messages (set by the loader).
    _path: Path | None = PrivateAttr(default=None)
    _raw: Any = PrivateAttr(default=None)

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, value: dict[str, Parameter]) -> dict[str, Parameter]:
        for name in value:
            if not re.match(ID_PATTERN, name):
                raise ValueError(f"parameter name {name!r} must be lower-case letters, digits and _")
            if name in BUILTIN_PARAMETERS:
                raise ValueError(f"parameter {name!r} is built in; do not declare it")
        return value

    @model_validator(mode="after")
    def _case_parameters(self) -> "Rule":
        names = [case.name for case in self.tests]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"test case names must be unique: {dupes}")
        if len(set(self.requires)) != len(self.requires):
            raise ValueError("requires lists a table twice")
        for case in self.tests:
            for key, value in case.parameters.items():
                if key not in self.parameters:
                    raise ValueError(f"case {case.name!r}: parameter {key!r} is not declared by the rule")
                try:
                    case.parameters[key] = coerce_param(self.parameters[key].type, value)
                except ValueError as exc:
                    raise ValueError(f"case {case.name!r}: parameter {key!r}: {exc}") from None
        return self

    @property
    def path(self) -> Path | None:
        """The YAML file the rule was loaded from (None when built in code)."""
        return self._path

    def line_of(self, *loc: Any) -> int | None:
        """1-based line of a key path inside the rule file, e.g. ``line_of('tests', 2)``."""
        from pipelines.yaml_loader import line_of

        return line_of(self._raw, loc) if self._raw is not None else None

    def parameter_values(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Defaults of the declared parameters with ``overrides`` applied (coerced to their type)."""
        values = {name: p.default for name, p in self.parameters.items()}
        for key, value in (overrides or {}).items():
            if key not in self.parameters:
                raise KeyError(key)
            values[key] = coerce_param(self.parameters[key].type, value)
        return values
