"""Resource limits: the one place that bounds the work any input file or rule can cause.

:class:`Limits` holds every limit with its default. A run carries one (``RunConfig.limits``);
``fraudwatch run --limit NAME=VALUE`` overrides a field for that run (sizes accept ``64KB``,
``1GiB`` …, times accept ``90`` or ``90s``/``5m``). Code deep in a reader asks :func:`current`, which
is the run's limits while a stage runs (:func:`using`) and the defaults otherwise.

A rule may also set ``limits: {time_seconds: …, memory: …}`` in its YAML (see ``rules/engine``).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipelines.errors import ConfigError

KiB, MiB, GiB = 1024, 1024**2, 1024**3
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": KiB, "MIB": MiB, "GIB": GiB, "TIB": 1024**4}
_TIME_UNITS = {"": 1, "S": 1, "M": 60, "H": 3600}


def parse_bytes(value: Any) -> int:
    """``1048576``, ``'64KB'``, ``'1.5GiB'`` → bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"{value!r} is not a size (e.g. 65536, 64KB, 1GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def parse_seconds(value: Any) -> float:
    """``90``, ``'90s'``, ``'5m'``, ``'1h'`` → seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _TIME_UNITS:
        raise ValueError(f"{value!r} is not a duration (e.g. 90, 90s, 5m)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).upper()]


def show_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


class Limits(BaseModel):
    """Every bound on the work an input or a rule may cause. Defaults are generous for real
    extracts (an XLSX holds at most 1,048,576 rows) and small against this machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # XLSX: checked from the zip's central directory, then while streaming the sheet XML.
    xlsx_max_uncompressed_bytes: int = Field(1 * GiB, gt=0, description="all members of the workbook zip, decompressed")
    xlsx_max_compression_ratio: float = Field(200.0, gt=1, description="decompressed / compressed, per member")
    xlsx_max_rows: int = Field(1_048_576, gt=0, description="rows of the sheet read (Excel's own maximum)")
    xlsx_max_cells: int = Field(30_000_000, gt=0, description="last row × last column of the sheet (the reader holds a dense grid)")
    # CSV: checked while the file is hashed, before it is parsed.
    csv_max_field_bytes: int = Field(1 * MiB, gt=0, description="one field, quotes included")
    csv_max_line_bytes: int = Field(16 * MiB, gt=0, description="one record (line), quoted line breaks included")
    # Parquet: checked from the footer metadata before reading.
    parquet_max_row_group_bytes: int = Field(2 * GiB, gt=0, description="uncompressed size of one row group")
    parquet_max_rows: int = Field(2_000_000_000, gt=0, description="rows in one Parquet file")
    parquet_max_columns: int = Field(2_000, gt=0, description="columns in one Parquet file")
    # YAML (rules, contracts): checked before and while parsing.
    yaml_max_bytes: int = Field(1 * MiB, gt=0, description="size of one YAML file")
    yaml_max_depth: int = Field(64, gt=0, description="nesting of mappings and lists")
    yaml_max_nodes: int = Field(200_000, gt=0, description="values after alias expansion (billion laughs)")
    # Rules: each runs under both; a rule YAML may set its own (`limits:`), a run overrides all.
    rule_time_limit_seconds: float = Field(600.0, gt=0, description="wall time of one rule")
    # 4 GiB made the large rules spill at 10M persons (shared_bank_account 30 s → 16 s, duplicate_cross_region
    # 76 s → 50 s with 12 GiB); a rule never gets more than the run's own memory limit.
    rule_memory_limit_bytes: int = Field(16 * GiB, gt=0,
                                         description="DuckDB memory of one rule (at most the run's memory limit), and of its result")
    rule_spill_limit_bytes: int = Field(50 * GiB, gt=0, description="what one rule may spill to disk")

    @field_validator("xlsx_max_uncompressed_bytes", "csv_max_field_bytes", "csv_max_line_bytes",
                     "parquet_max_row_group_bytes", "yaml_max_bytes", "rule_memory_limit_bytes",
                     "rule_spill_limit_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_bytes(value)

    @field_validator("rule_time_limit_seconds", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float:
        return parse_seconds(value)

    def with_overrides(self, items: dict[str, Any]) -> "Limits":
        """A copy with ``items`` (name → value as text or number) applied; bad names/values raise ConfigError."""
        unknown = sorted(set(items) - set(type(self).model_fields))
        if unknown:
            raise ConfigError(f"unknown limit(s): {', '.join(unknown)}",
                              hint=f"limits: {', '.join(type(self).model_fields)}")
        try:
            return type(self).model_validate(self.model_dump() | items)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"limit {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


DEFAULT = Limits()
_current: ContextVar[Limits | None] = ContextVar("fraudwatch_limits", default=None)
_process: list[Limits] = [DEFAULT]  # for worker threads, which do not inherit context variables


def current() -> Limits:
    """The limits in force (the run's while one of its stages runs, else the defaults)."""
    return _current.get() or _process[-1]


@contextmanager
def using(limits: Limits | None) -> Iterator[Limits]:
    """Make ``limits`` the ones in force inside the block (and in threads it starts)."""
    limits = limits or DEFAULT
    token = _current.set(limits)
    _process.append(limits)
    depth = len(_process) - 1
    try:
        yield limits
    finally:
        del _process[depth:]
        _current.reset(token)


def parse_cli(items: list[str]) -> dict[str, str]:
    """``['csv_max_field_bytes=64KB', …]`` → a dict for :meth:`Limits.with_overrides`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--limit {item!r}: expected NAME=VALUE, e.g. csv_max_field_bytes=64KB")
        out[name.strip()] = value.strip()
    return out
