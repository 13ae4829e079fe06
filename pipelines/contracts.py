"""Data contracts: one YAML file per extract under ``data_contracts/``, parsed into typed models.

A contract says which columns an extract has, their Chinese aliases, the value type each is
normalised to, which are required, and the constraints checked at validation time.
"""

from __future__ import annotations

import unicodedata
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.errors import ContractError
from pipelines.yaml_loader import load_model

DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "data_contracts"


class ValueType(str, Enum):
    """How a column's raw text is normalised (see extracts.md, 'Value conventions')."""

    text = "text"              # trimmed text, NFKC
    person_id = "person_id"    # 18-char canonical ID; adds <col>_valid, <col>_birth_date, <col>_gender
    firm_id = "firm_id"        # USCC upper-case; adds <col>_valid
    name = "name"              # NFKC, inner whitespace removed; adds <col>_raw
    date = "date"              # DATE
    period = "period"          # DATE, first day of the month
    money = "money"            # DECIMAL(18,2)
    scheme = "scheme"          # '110' / '120' / '170'
    region_code = "region_code"  # 6-digit text
    boolean = "boolean"        # BOOLEAN from 是/否, Y/N, true/false, 1/0
    enum = "enum"              # one of `values` (canonical), accepting each value's aliases


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    name: str
    aliases: list[str] = Field(default_factory=list)
    type: ValueType
    required: bool = False
    description: str | None = None
    # enum: canonical value -> accepted aliases
    values: dict[str, list[str]] | None = None
    unique: bool = False
    min: str | float | None = None
    max: str | float | None = None
    # person_id / firm_id: least share of valid checksums before the extract is refused
    min_valid_rate: float | None = Field(default=None, ge=0, le=1)
    # required only when another (boolean) column is true, e.g. dispatched_amount
    required_when: str | None = None

    @model_validator(mode="after")
    def _enum_has_values(self) -> "Column":
        if self.type is ValueType.enum and not self.values:
            raise ValueError(f"column {self.name!r}: type enum needs `values`")
        if self.type is not ValueType.enum and self.values:
            raise ValueError(f"column {self.name!r}: `values` only goes with type enum")
        return self


class Contract(_Strict):
    extract: str
    title: str
    description: str | None = None
    owner: str | None = None
    columns: list[Column]
    # Share of rows that may be quarantined before the whole extract is refused.
    max_broken_rate: float = Field(default=0.5, ge=0, le=1)
    checks: list[Literal["unique_ids"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_columns(self) -> "Contract":
        seen: dict[str, str] = {}
        for col in self.columns:
            for label in [col.name, *col.aliases]:
                key = header_key(label)
                if key in seen:
                    raise ValueError(f"header {label!r} names both {seen[key]!r} and {col.name!r}")
                seen[key] = col.name
        return self

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]

    def header_map(self) -> dict[str, str]:
        """Normalised header text (canonical name or alias) -> canonical column name."""
        return {header_key(label): col.name for col in self.columns for label in [col.name, *col.aliases]}


def header_key(label: str) -> str:
    """Headers match regardless of case, surrounding spaces and full-width characters."""
    return unicodedata.normalize("NFKC", label).strip().lower().replace(" ", "_")


def load_contract(path: str | Path) -> Contract:
    """Load one contract file; problems raise :class:`ContractError` naming file and line."""
    contract = load_model(Contract, path, ContractError)
    if Path(path).stem != contract.extract:
        raise ContractError(
            f"file name does not match extract {contract.extract!r}",
            file=path,
            hint=f"rename the file to {contract.extract}.yaml",
        )
    return contract


def load_contracts(directory: str | Path = DEFAULT_CONTRACTS_DIR) -> dict[str, Contract]:
    """All contracts in a folder, by extract name."""
    directory = Path(directory)
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ContractError("no data contracts found", file=directory, hint="expected one <extract>.yaml per extract")
    return {c.extract: c for c in (load_contract(f) for f in files)}
