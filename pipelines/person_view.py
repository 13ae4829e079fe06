"""Everything known about one person, for analysts: :func:`person_facts` gathers it (polars frames,
reused by the notebooks), :func:`render_person` prints it in the terminal (``fraudwatch person``).

Facts come from the warehouse (payments, ``death_records``, prisoners, household, ``_outcomes``,
``person_links`` when identity linking has built it) and from every run's ``suspects.parquet``.
Absent tables give empty frames with the right columns, so a partial landing folder still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from typing import Any

import polars as pl

from pipelines import publish
from pipelines.engine import Engine, as_engine
from pipelines.normalize import person_id_parts
from pipelines.case_store import CaseStore, open_store
from pipelines.outcomes import OUTCOME_LABELS


@dataclass
class PersonFacts:
    """One person's facts. ``links`` is None when the warehouse has no ``person_links`` table."""

    query: str                  # the ID as typed
    person_id: str              # canonical (15 → 18 digits, upper X); as typed (trimmed, upper) if invalid
    valid: bool
    birth_date: date | None
    gender: str | None
    names: pl.DataFrame         # source, name, rows
    links: pl.DataFrame | None  # other_id, score, agreed_fields, ... (person_links rows touching this ID)
    cluster: pl.DataFrame | None  # identity_clusters row of this ID (canonical_id, cluster_size, ...); None: no table
    payments: pl.DataFrame      # kind (pension/subsidy), scheme (scheme or subsidy program), region_code, period, amount, pay_date, payment_id, bank_account, source_file, source_row
    payments_by_month: pl.DataFrame  # period, kind, scheme, region_code, payments, amount, after_death, in_prison
    deaths: pl.DataFrame        # death_records rows: death_date, source, record_id, name, person_id_valid
    weak_deaths: pl.DataFrame | None  # death_matches rows (invalid/unknown death ID matched by name + birth date)
    prison: pl.DataFrame        # admission_date, release_date, sentence_type, name, source_file, source_row
    household: pl.DataFrame     # household rows
    hits: pl.DataFrame          # rule hits across all runs: run_id, rule_id, category, ..., status
    outcomes: pl.DataFrame      # _outcomes history (oldest first) with is_current

    @property
    def death_date(self) -> date | None:
        """Earliest death date over all sources, or None."""
        dates = self.deaths["death_date"].drop_nulls()
        return dates.min() if len(dates) else None

    @property
    def found(self) -> bool:
        """True when any registry, run or outcome mentions the person."""
        frames = [self.payments, self.deaths, self.prison, self.household, self.hits, self.outcomes,
                  self.links, self.weak_deaths]
        return any(f is not None and f.height for f in frames)


def normalise_person_id(text: str) -> tuple[str, bool, date | None, str | None]:
    """(canonical ID, valid, birth date, gender) of a typed ID, with the warehouse's own normaliser."""
    frame = pl.DataFrame({"v": [text]}, schema={"v": pl.String})
    parts = frame.select(p=person_id_parts(pl.col("v"))).unnest("p").row(0, named=True)
    value = parts["value"] or text.strip().upper()
    return value, bool(parts["valid"]), parts["birth_date"], parts["gender"]


def _columns(con: Engine, table: str) -> set[str]:
    return set(con.column_types(f"SELECT * FROM {con.dialect.quote_identifier(table)}"))


def _frame(con: Engine, sql: str, params: dict) -> pl.DataFrame:
    return pl.from_arrow(con.query(sql, params))


def _empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


_PAYMENT_SCHEMA = {"kind": pl.String, "scheme": pl.String, "region_code": pl.String, "period": pl.Date,
                   "amount": pl.Decimal(18, 2), "pay_date": pl.Date, "payment_id": pl.String, "bank_account": pl.String,
                   "name": pl.String, "source_file": pl.String, "source_row": pl.Int64}


def _payments(con: Engine, have: set[str], pid: str) -> pl.DataFrame:
    parts = []
    if "pension_payments" in have:
        cols = _columns(con, "pension_payments")
        bank = "bank_account" if "bank_account" in cols else "NULL::VARCHAR"
        pay = "pay_date" if "pay_date" in cols else "NULL::DATE"
        parts.append(f"SELECT 'pension' AS kind, scheme, region_code, period, amount, {pay} AS pay_date, payment_id, "
                     f"{bank} AS bank_account, name, _source_file AS source_file, _source_row AS source_row "
                     "FROM pension_payments WHERE person_id = $pid")
    if "subsidy_payments" in have:
        parts.append("SELECT 'subsidy', program, region_code, period, amount, NULL::DATE, payment_id, NULL::VARCHAR, name, "
                     "_source_file, _source_row FROM subsidy_payments WHERE person_id = $pid")
    if not parts:
        return _empty(_PAYMENT_SCHEMA)
    sql = " UNION ALL ".join(parts) + " ORDER BY period, kind, scheme, region_code, payment_id"
    return _frame(con, sql, {"pid": pid})


def _table_rows(con, have: set[str], table: str, select: str, schema: dict, pid: str, order: str) -> pl.DataFrame:
    if table not in have:
        return _empty(schema)
    return _frame(con, f"SELECT {select} FROM {table} WHERE person_id = $pid ORDER BY {order}", {"pid": pid})


def _run_suspect_files(output: Path) -> list[str]:
    runs = publish.runs_dir(Path(output))
    if not runs.is_dir():
        return []
    return sorted(str(d / publish.SUSPECTS_FILE) for d in runs.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and (d / publish.SUSPECTS_FILE).exists())


_HIT_SCHEMA = {"run_id": pl.String, "rule_id": pl.String, "category": pl.String, "severity": pl.String,
               "region_code": pl.String, "first_period": pl.String, "last_period": pl.String,
               "amount_at_risk": pl.Decimal(18, 2), "status": pl.String, "reason": pl.String}


def person_facts(con: Engine | Any, output_dir: Path, person_id: str,
                 store: CaseStore | None = None) -> PersonFacts:
    """Gather one person's facts from the warehouse ``con``, the runs under ``output_dir`` and the
    outcomes in the case store (``store``, default the one of ``output_dir``).

    ``person_id`` is normalised as the warehouse does (a 15-digit ID becomes its 18-digit form).
    Set-based: each source is one filtered query; rule hits are read from every run's
    ``suspects.parquet`` in one scan.
    """
    pid, valid, birth, gender = normalise_person_id(person_id)
    con = as_engine(con)  # an engine session, or a raw DuckDB connection (notebooks, tests)
    have = con.relations()
    payments = _payments(con, have, pid)
    deaths = _table_rows(con, have, "death_records", "death_date, source, record_id, name, person_id_valid",
                         {"death_date": pl.Date, "source": pl.String, "record_id": pl.String, "name": pl.String,
                          "person_id_valid": pl.Boolean}, pid, "death_date, source, record_id")
    prison = _table_rows(con, have, "prisoners", "admission_date, release_date, sentence_type, name, "
                         "_source_file AS source_file, _source_row AS source_row",
                         {"admission_date": pl.Date, "release_date": pl.Date, "sentence_type": pl.String,
                          "name": pl.String, "source_file": pl.String, "source_row": pl.Int64}, pid, "admission_date")
    household = _table_rows(con, have, "household", "* EXCLUDE (_file_sha256)",
                            {"person_id": pl.String, "name": pl.String, "household_id": pl.String,
                             "region_code": pl.String, "status": pl.String}, pid, "_source_file, _source_row")
    links = cluster = weak_deaths = None
    if "person_links" in have:
        links = _frame(con, """
            SELECT CASE WHEN person_id_a = $pid THEN person_id_b ELSE person_id_a END AS other_id, * EXCLUDE (person_id_a, person_id_b)
            FROM person_links WHERE person_id_a = $pid OR person_id_b = $pid ORDER BY score DESC, other_id""", {"pid": pid})
    if "identity_clusters" in have:
        cluster = _frame(con, "SELECT * FROM identity_clusters WHERE person_id = $pid", {"pid": pid})
    if "death_matches" in have and "matched_person_id" in _columns(con, "death_matches"):
        weak_deaths = _frame(con, "SELECT * FROM death_matches WHERE matched_person_id = $pid ORDER BY death_date",
                             {"pid": pid})
    files = _run_suspect_files(output_dir)
    hits = _frame(con, f"""SELECT {', '.join(_HIT_SCHEMA)} FROM read_parquet($files, union_by_name = true)
                           WHERE subject_id = $pid ORDER BY run_id, rule_id""",
                  {"files": files, "pid": pid}) if files else _empty(_HIT_SCHEMA)
    if store is None:
        with open_store(Path(output_dir), migrate_legacy=False) as own:
            history = own.history(subject_id=pid)
    else:
        history = store.history(subject_id=pid)
    outcomes = pl.from_arrow(history).with_columns(
        is_current=pl.int_range(pl.len()).over("rule_id") == pl.len().over("rule_id") - 1)
    name_parts = [payments.select(pl.col("kind").alias("source"), "name")]
    for label, frame in (("death", deaths), ("prison", prison), ("household", household)):
        if "name" in frame.columns:
            name_parts.append(frame.select(pl.lit(label).alias("source"), pl.col("name").cast(pl.String)))
    names = (pl.concat(name_parts).drop_nulls("name").group_by("source", "name").len("rows").sort("source", "name"))
    return PersonFacts(person_id, pid, valid, birth, gender, names, links, cluster, payments,
                       _by_month(payments, deaths, prison), deaths, weak_deaths, prison, household, hits, outcomes)


def _by_month(payments: pl.DataFrame, deaths: pl.DataFrame, prison: pl.DataFrame) -> pl.DataFrame:
    """Payments per month, kind, scheme and region, flagged when after the death month or while in
    prison (strictly between the admission and release months; open-ended without a release)."""
    death = deaths["death_date"].drop_nulls()
    death_month = death.min().replace(day=1) if len(death) else None
    spans = prison.select(
        start=pl.col("admission_date").dt.month_start(), end=pl.col("release_date").dt.month_start()
    ).filter(pl.col("start").is_not_null())
    grouped = payments.group_by("period", "kind", "scheme", "region_code").agg(
        payments=pl.len(), amount=pl.col("amount").sum()).sort("period", "kind", "scheme", "region_code")
    after = (pl.col("period") > pl.lit(death_month)) if death_month else pl.lit(False)
    in_prison = pl.lit(False)
    for start, end in spans.iter_rows():  # one person's few prison records, not data rows
        inside = (pl.col("period") > pl.lit(start)) & ((pl.col("period") < pl.lit(end)) if end else pl.lit(True))
        in_prison = in_prison | inside
    return grouped.with_columns(after_death=after.fill_null(False), in_prison=in_prison.fill_null(False))


def _money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


def render_person(facts: PersonFacts, console) -> None:
    """Print the facts with rich: identity, links, payments by month, death, prison, household, hits, outcomes."""
    from rich.table import Table

    from pipelines.textsafe import literal

    def table(title: str, frame: pl.DataFrame, columns: list[str], money: tuple[str, ...] = ()) -> None:
        if frame.height == 0:
            console.print(f"[bold]{title}[/]: none")
            return
        t = Table(title=title, title_justify="left", title_style="bold")
        for c in columns:
            t.add_column(c, justify="right" if c in money else "left")
        for row in frame.select(columns).iter_rows(named=True):
            # values from data are shown literally: no markup, control characters visible
            t.add_row(*[literal(_money(row[c]) if c in money else row[c], newlines=False) for c in columns])
        console.print(t)

    header = literal(facts.person_id, "bold") + " ("
    header += literal("valid") if facts.valid else literal("invalid checksum/birth date", "red")
    header += ")"
    if facts.query.strip().upper() != facts.person_id:
        header += literal(f"  typed as {facts.query.strip()}", "dim")
    if facts.birth_date:
        header += literal(f"  born {facts.birth_date}  {facts.gender or ''}")
    console.print(header)
    if not facts.found:
        console.print("no registry rows, rule hits or outcomes for this ID", style="yellow")
        return
    names = ", ".join(f"{n} ({s})" for s, n, _ in facts.names.iter_rows())
    console.print(literal(f"names: {names or '—'}", newlines=False))
    if facts.links is None:
        console.print("[bold]linked identities[/]: none (identity linking has not run: no person_links table)")
    else:
        wanted = ("other_id", "score", "agreed_fields", "id_level", "name_a", "name_b", "name_level")
        table("linked identities", facts.links, [c for c in wanted if c in facts.links.columns])
    if facts.cluster is not None and facts.cluster.height and "canonical_id" in facts.cluster.columns:
        row = facts.cluster.row(0, named=True)
        console.print(literal(f"identity cluster: canonical ID {row['canonical_id']}, {row.get('cluster_size', '?')} IDs"))
    if facts.death_date:
        console.print(f"[bold red]died {facts.death_date}[/]")
    by_month = facts.payments_by_month.with_columns(
        flag=pl.when(pl.col("after_death")).then(pl.lit("after death"))
        .when(pl.col("in_prison")).then(pl.lit("in prison")).otherwise(pl.lit("")),
        period=pl.col("period").dt.strftime("%Y-%m"))
    table("payments by month and region", by_month, ["period", "kind", "scheme", "region_code", "payments", "amount", "flag"],
          money=("amount",))
    table("death records", facts.deaths, ["death_date", "source", "record_id", "name"])
    if facts.weak_deaths is not None and facts.weak_deaths.height:
        wanted = ("death_date", "source", "record_id", "death_person_id", "death_name", "death_id_problem", "status", "link_score")
        table("death records matched by name and birth date (weaker)", facts.weak_deaths,
              [c for c in wanted if c in facts.weak_deaths.columns])
    table("prison records", facts.prison, ["admission_date", "release_date", "sentence_type", "name"])
    hh_cols = [c for c in ("household_id", "name", "region_code", "status", "cancel_date", "cancel_reason")
               if c in facts.household.columns]
    table("household", facts.household, hh_cols)
    table("rule hits (all runs)", facts.hits, ["run_id", "rule_id", "region_code", "first_period", "last_period",
                                               "amount_at_risk", "status"], money=("amount_at_risk",))
    outcomes = facts.outcomes.with_columns(
        outcome=pl.col("outcome").replace(OUTCOME_LABELS),
        current=pl.when(pl.col("is_current")).then(pl.lit("✓")).otherwise(pl.lit("")))
    table("outcomes (history)", outcomes, ["rule_id", "outcome", "recovered_amount", "reviewer", "review_date", "note",
                                           "run_id", "current"], money=("recovered_amount",))
