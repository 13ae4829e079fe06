"""How exact a screen is, measured two ways (used by ``benchmarks/screen_bench.py`` and
``tests/screen/test_screen_e2e.py``, so the check is written once):

* against the synth's truth (``fraudwatch synth --payroll-next``: ``payroll_truth.parquet``): every
  planted hold held under its reason and severity, nothing else in the file held;
* against the rules (the oracle): audit the landing folder *with* the payroll as paid; the payroll
  rows the rules then count as at risk (by their evidence) must be exactly the rows held, reason
  by reason.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

import polars as pl

# where each rule's evidence lists the payments it counts as at risk
AT_RISK_IDS = {
    "paid_after_death": lambda e: e["payment_ids"],
    "paid_after_death_weak_match": lambda e: e["payment_ids"],
    "paid_during_imprisonment": lambda e: e["payment_ids"],
    "duplicate_cross_region": lambda e: e["improper_payment_ids"],
    "duplicate_cross_scheme": lambda e: e["resident_payment_ids"],
    "duplicate_identity": lambda e: e["improper_payment_ids"],
    "duplicate_payment_same_period": lambda e: [i for d in e["duplicates"] for i in d["duplicate_payment_ids"]],
}


# A row held as certified_after_death is, for the rules, a paid_after_death payment (certified_after_death
# itself counts no money: it reports the certification, and paid_after_death the payments).
AS_RULES_COUNT = {"certified_after_death": "paid_after_death"}


def held(holds: pl.DataFrame) -> set[tuple[str, str]]:
    """(payment_id, reason as the rules count it) for every reason of every held row."""
    return {(r["payment_id"], AS_RULES_COUNT.get(reason, reason))
            for r in holds.iter_rows(named=True) for reason in r["hold_reasons"].split(",")}


def against_truth(holds: pl.DataFrame, truth: pl.DataFrame, audit_suspects: pl.DataFrame | None = None) -> dict:
    """Planted holds missed, near misses held, holds under another reason, and rows held that were not
    planted. The synth's clean pensioners are clean by construction, except where a coincidence of
    the data makes the audit itself report one (e.g. a namesake of a planted dead person); holding
    such a payee again under the category the audit reported (``audit_suspects``: its suspects) is
    right and counted apart. ``exact``: nothing missed, no near miss held, no other reason, and no
    hold unexplained."""
    want = {r["payment_id"]: (r["hold_reason"], r["severity"], r["rule_id"])
            for r in truth.filter(pl.col("expect") == "hold").iter_rows(named=True)}
    got = {r["payment_id"]: (r["hold_reason"], r["severity"], r["rule_id"]) for r in holds.iter_rows(named=True)}
    near = set(truth.filter(pl.col("expect") == "pass")["payment_id"])
    known = set() if audit_suspects is None else set(audit_suspects.select("category", "subject_id").iter_rows())
    extra = holds.filter(~pl.col("payment_id").is_in(list(want)))
    suspects = sorted(r["payment_id"] for r in extra.iter_rows(named=True) if (r["hold_reason"], r["person_id"]) in known)
    unexplained = sorted(set(extra["payment_id"]) - set(suspects))
    result = {"planted_holds": len(want), "held": len(got),
              "missed": sorted(set(want) - set(got)), "near_misses_held": sorted(near & set(got)),
              "other_reason": sorted(k for k in set(want) & set(got) if want[k] != got[k]),
              "held_audit_suspects": suspects, "unexplained": unexplained}
    result["exact"] = not (result["missed"] or result["near_misses_held"] or result["other_reason"] or unexplained)
    return result


def audit_with_payroll(landing: Path, payroll: Path, workdir: Path, as_of: date, memory_limit: str | None = None) -> Path:
    """Audit ``landing`` plus the payroll file (hard links where possible: the landing folder refuses
    symbolic links) into ``workdir/out``; returns the run's suspects.parquet."""
    from pipelines.pipeline import RunConfig
    from pipelines.stages import run_pipeline

    paid = workdir / "landing_paid"
    paid.mkdir(parents=True, exist_ok=True)
    for path in [*sorted(p for p in Path(landing).iterdir() if p.is_file()), Path(payroll)]:
        target = paid / path.name
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
    return run_pipeline(RunConfig(input=paid, output=workdir / "out", as_of=as_of, memory_limit=memory_limit)).suspects


def against_rules(holds: pl.DataFrame, payroll: Path, suspects: Path) -> dict:
    """The oracle's comparison (see the module doc); ``suspects`` from :func:`audit_with_payroll`."""
    paying = set(pl.read_csv(payroll, columns=["payment_id", "amount"], infer_schema=False)
                 .filter(pl.col("amount").cast(pl.Decimal(18, 2)) > 0)["payment_id"])
    found, truncated = set(), 0
    table = pl.read_parquet(suspects)
    for row in table.filter(pl.col("rule_id").is_in(list(AT_RISK_IDS))).iter_rows(named=True):
        evidence = json.loads(row["evidence"])
        truncated += not (evidence.get("payment_ids_complete", True) and evidence.get("duplicates_complete", True))
        found |= {(i, row["category"]) for i in AT_RISK_IDS[row["rule_id"]](evidence) if i in paying}
    got = held(holds)
    return {"rules_at_risk_payroll_rows": len(found), "held_row_reasons": len(got), "equal": got == found,
            "only_held": sorted(got - found)[:10], "only_rules": sorted(found - got)[:10],
            "suspects_with_truncated_evidence": truncated}
