"""The generated structure before it becomes extracts: pension and subsidy payment
segments, death and household-cancellation records, prison terms, and what each
planted case intends. Everything is column arrays; cases append blocks of rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

NONE = -10_000  # month index meaning "no fixed pay month" / "not set"


class Parts:
    """Collects blocks of equal-length column arrays; scalars are broadcast."""

    def __init__(self, schema: dict[str, pl.DataType]) -> None:
        self.schema = schema
        self.blocks: list[dict[str, np.ndarray]] = []

    def add(self, **cols) -> None:
        n = max(len(v) for v in cols.values() if np.ndim(v) > 0)
        if set(cols) != set(self.schema):
            raise ValueError(f"columns {sorted(cols)} != {sorted(self.schema)}")
        self.blocks.append({k: np.broadcast_to(np.asarray(v), (n,)) for k, v in cols.items()})

    def frame(self) -> pl.DataFrame:
        if not self.blocks:
            return pl.DataFrame(schema=self.schema)
        cols = {k: np.concatenate([b[k] for b in self.blocks]) for k in self.schema}
        return pl.DataFrame({k: pl.Series(k, v).cast(t) for (k, v), t in zip(cols.items(), self.schema.values())})


# One row per contiguous run of monthly payments [first, last] (month indexes, inclusive).
# pay_month: month index the whole run was paid in (arrears), or NONE = each in its own month.
# legacy: paid under the 15-digit form of the ID.
PENSION_SCHEMA = {
    "person": pl.Int64, "region": pl.Int64, "scheme": pl.Int64, "fen": pl.Int64,
    "first": pl.Int64, "last": pl.Int64, "pay_month": pl.Int64, "legacy": pl.Boolean,
}
SUBSIDY_SCHEMA = {
    "person": pl.Int64, "program": pl.Int64, "region": pl.Int64, "fen": pl.Int64,
    "first": pl.Int64, "last": pl.Int64,
}
DEATH_SCHEMA = {"person": pl.Int64, "date": pl.Date, "source": pl.Int64}
CANCEL_SCHEMA = {"person": pl.Int64, "date": pl.Date, "reason": pl.Int64}
MOVE_SCHEMA = {"person": pl.Int64, "region": pl.Int64}
PRISON_SCHEMA = {"person": pl.Int64, "admission": pl.Date, "release": pl.Date, "sentence": pl.Int64}
INTENT_SCHEMA = {"kind": pl.String, "subject": pl.Int64, "categories": pl.String}
# Identity cases (fraudwatch_synth/identity.py): other IDs standing for a person, the pension runs
# paid under them and the death records filed under them; intents and near misses per rule.
VARIANT_SCHEMA = {"variant": pl.Int64, "person": pl.Int64, "kind": pl.String, "person_id": pl.String,
                  "name": pl.String, "role": pl.String}
VARIANT_PENSION_SCHEMA = {"variant": pl.Int64, "region": pl.Int64, "scheme": pl.Int64, "fen": pl.Int64,
                          "first": pl.Int64, "last": pl.Int64}
VARIANT_DEATH_SCHEMA = {"variant": pl.Int64, "date": pl.Date, "source": pl.Int64}
VARIANT_SUBSIDY_SCHEMA = {"variant": pl.Int64, "program": pl.Int64, "region": pl.Int64, "fen": pl.Int64,
                          "first": pl.Int64, "last": pl.Int64}
IDENTITY_INTENT_SCHEMA = {"kind": pl.String, "subject": pl.Int64, "rule_id": pl.String}
# Proof-of-life records (fraudwatch_synth/certifications.py): method index into METHODS.
CERT_SCHEMA = {"person": pl.Int64, "date": pl.Date, "method": pl.Int64, "passed": pl.Boolean, "region": pl.Int64}
NEAR_MISS_SCHEMA = {"kind": pl.String, "subject": pl.Int64, "category": pl.String}


@dataclass
class Plan:
    """Everything generated about persons (firms live in `firms.py`)."""

    pension: Parts = field(default_factory=lambda: Parts(PENSION_SCHEMA))
    subsidy: Parts = field(default_factory=lambda: Parts(SUBSIDY_SCHEMA))
    deaths: Parts = field(default_factory=lambda: Parts(DEATH_SCHEMA))
    cancels: Parts = field(default_factory=lambda: Parts(CANCEL_SCHEMA))
    # Household registration moved to another region (the household row shows the new one).
    moves: Parts = field(default_factory=lambda: Parts(MOVE_SCHEMA))
    prisons: Parts = field(default_factory=lambda: Parts(PRISON_SCHEMA))
    # Planted persons: kind and the categories (comma-separated, sorted) they must fire.
    intents: Parts = field(default_factory=lambda: Parts(INTENT_SCHEMA))
    near_misses: Parts = field(default_factory=lambda: Parts(NEAR_MISS_SCHEMA))
    # Name overrides (namesakes): person index -> name of another person index.
    same_name: Parts = field(default_factory=lambda: Parts({"person": pl.Int64, "name_of": pl.Int64}))
    # Identity cases: see VARIANT_SCHEMA and fraudwatch_synth/identity.py.
    variants: Parts = field(default_factory=lambda: Parts(VARIANT_SCHEMA))
    variant_pension: Parts = field(default_factory=lambda: Parts(VARIANT_PENSION_SCHEMA))
    variant_deaths: Parts = field(default_factory=lambda: Parts(VARIANT_DEATH_SCHEMA))
    variant_subsidy: Parts = field(default_factory=lambda: Parts(VARIANT_SUBSIDY_SCHEMA))
    identity_intents: Parts = field(default_factory=lambda: Parts(IDENTITY_INTENT_SCHEMA))
    identity_near_misses: Parts = field(default_factory=lambda: Parts(NEAR_MISS_SCHEMA))
    certs: Parts = field(default_factory=lambda: Parts(CERT_SCHEMA))
    # National sets: persons whose death records are registered in another province (its code).
    registered_elsewhere: Parts = field(default_factory=lambda: Parts({"person": pl.Int64, "province": pl.Int64}))

    def pension_run(self, person, region, scheme, fen, first, last, pay_month=NONE, legacy=False) -> None:
        """Append pension runs; empty runs (last < first) are dropped."""
        person = np.asarray(person)
        n = len(person)
        cols = {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in dict(
            region=region, scheme=scheme, fen=fen, first=first, last=last, pay_month=pay_month, legacy=legacy
        ).items()}
        keep = cols["last"] >= cols["first"]
        self.pension.add(person=person[keep], **{k: v[keep] for k, v in cols.items()})

    def subsidy_run(self, person, program, region, fen, first, last) -> None:
        """Append subsidy runs; empty runs are dropped."""
        person = np.asarray(person)
        n = len(person)
        cols = {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in dict(
            program=program, region=region, fen=fen, first=first, last=last
        ).items()}
        keep = cols["last"] >= cols["first"]
        self.subsidy.add(person=person[keep], **{k: v[keep] for k, v in cols.items()})
