"""Each rule runs under a time limit and a memory cap (both on by default).

The limits come from the run (:func:`pipelines.limits.current`) unless the rule's YAML sets its own
(``limits: {time_seconds: 1800, memory: 8GB}``); a limit the run sets explicitly (``--limit``)
beats the rule's. The engine enforces them (:meth:`Engine.query_limited`: for DuckDB its
``memory_limit`` and ``max_temp_directory_size`` for the query, a timer that interrupts it, the
Arrow result held to the same cap). Exceeding either raises :class:`RuleError` naming the rule
and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipelines import limits as limits_mod
from pipelines.engine import Engine
from pipelines.engine.base import QueryLimitExceeded
from pipelines.errors import RuleError
from pipelines.limits import show_bytes


@dataclass(frozen=True)
class Budget:
    seconds: float
    memory_bytes: int
    spill_bytes: int
    time_source: str  # where each limit came from, for the message
    memory_source: str


def budget_for(rule: Any) -> Budget:
    run = limits_mod.current()
    default = limits_mod.DEFAULT
    own = getattr(rule, "limits", None)
    seconds, time_source = run.rule_time_limit_seconds, "limits.rule_time_limit_seconds"
    memory, memory_source = run.rule_memory_limit_bytes, "limits.rule_memory_limit_bytes"
    if own is not None:  # the rule's own limits, unless the run set that limit explicitly
        if own.time_seconds is not None and run.rule_time_limit_seconds == default.rule_time_limit_seconds:
            seconds, time_source = own.time_seconds, "the rule's limits.time_seconds"
        if own.memory is not None and run.rule_memory_limit_bytes == default.rule_memory_limit_bytes:
            memory, memory_source = own.memory, "the rule's limits.memory"
    return Budget(seconds, memory, run.rule_spill_limit_bytes, time_source, memory_source)


def run_bounded(engine: Engine, rule: Any, sql: str, params: dict[str, Any]) -> pa.Table:
    """``sql`` as an Arrow table, under the rule's time limit and memory cap."""
    budget = budget_for(rule)
    try:
        return engine.query_limited(sql, params, seconds=budget.seconds, memory_bytes=budget.memory_bytes,
                                    spill_bytes=budget.spill_bytes)
    except QueryLimitExceeded as exc:
        if exc.which == "time":
            what = f"time limit of {budget.seconds:g} s"
            hint = (f"limit from {budget.time_source}; make the query cheaper, or raise it with "
                    "`limits: {time_seconds: …}` in the rule or `--limit rule_time_limit_seconds=…`")
        else:
            what = (f"memory cap of {show_bytes(budget.memory_bytes)}" if exc.which == "memory"
                    else f"spill limit of {show_bytes(budget.spill_bytes)} on disk")
            hint = (f"limit from {budget.memory_source if exc.which == 'memory' else 'limits.rule_spill_limit_bytes'}; "
                    "make the query cheaper (a join without a key multiplies rows), or raise `limits: {memory: …}` "
                    "in the rule or `--limit rule_memory_limit_bytes=…`")
        raise RuleError(f"the rule exceeded its {what} and was stopped", file=rule.path, rule=rule.id,
                        hint=hint) from None
