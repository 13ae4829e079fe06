"""One error hierarchy. Every error names where it came from (file, line, rule)
and, where it can, what the user should do about it."""

from __future__ import annotations

from pathlib import Path


class FraudwatchError(Exception):
    """Base of every error fraudwatch raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        rule: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.rule = rule
        self.hint = hint

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file if self.line is None else f"{self.file}:{self.line}")
        if self.rule:
            parts.append(f"rule {self.rule}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(FraudwatchError):
    """A YAML file (contract, rule, settings) is malformed."""


class ContractError(ConfigError):
    """A data contract file is malformed."""


class RuleError(ConfigError):
    """A rule file is malformed or its SQL is refused."""


class RuleSQLRefused(RuleError):
    """The rule's SQL does something a rule may not do (file access, DDL, ...)."""


class RuleTestFailure(RuleError):
    """A rule's embedded test case did not give the expected hits."""


class ExtractError(FraudwatchError):
    """An extract is unusable as a whole; the run stops."""


class ValidationFailed(ExtractError):
    """An extract failed an extract-level expectation of its data contract."""


class RunError(FraudwatchError):
    """A run could not complete (outputs, warehouse, parameters)."""


class OutcomeError(FraudwatchError):
    """An auditor's outcome file or command is invalid; nothing was imported."""
