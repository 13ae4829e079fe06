"""Baseline 2: one hand-written DuckDB query per suspects.md category over Parquet copies of the
extracts -- the floor for what the pipeline's detect stage can cost.

Two steps, timed separately by the benchmark:

* ``convert``: the CSV extracts of a landing folder (the clean, non-messy ``fraudwatch synth``
  layout: UTF-8, canonical headers, ISO dates, ``YYYY-MM`` periods, plain amounts) become one typed
  Parquet file per extract, with the same canonical values the warehouse holds: person IDs upgraded
  from 15 digits and checked (GB 11643), USCCs checked (GB 32100), dates as DATE, periods as the
  first day of the month, money as DECIMAL(18,2). Done once per data set.
* ``run``: the six queries (category, subject_id, amount_at_risk) over those Parquet files.

Written from docs/spec/suspects.md and the documented semantics of the rules (a period
counts only when its payments net to more than zero; the duplicate_cross_region "kept" region
is chosen among the regions paying that period), not by copying the rule files.

    python -m benchmarks.baseline_sql convert --landing DIR --out PARQUET_DIR
    python -m benchmarks.baseline_sql run --parquet PARQUET_DIR --as-of 2025-04-01 --out result.parquet
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import duckdb

EXTRACTS = ("pension_payments", "subsidy_payments", "deaths", "household", "prisoners",
            "stabilization_refunds", "refund_transfers")
CATEGORIES = ("paid_after_death", "subsidy_after_death", "duplicate_cross_region",
              "duplicate_cross_scheme", "paid_during_imprisonment", "refund_retained")
STOPPING_SENTENCES = ("有期徒刑", "拘役", "无期徒刑", "死刑缓期执行")

_PID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# --------------------------------------------------------------------------- conversion

_PID_SUM = " + ".join(f"(ascii(b[{i + 1}]) - 48) * {w}" for i, w in enumerate(_PID_WEIGHTS))
_USCC_SUM = " + ".join(f"(instr('{_USCC_CHARSET}', g[{i + 1}]) - 1) * {w}" for i, w in enumerate(_USCC_WEIGHTS))

MACROS = f"""
CREATE OR REPLACE MACRO fw_text(x) AS nullif(trim(x), '');
CREATE OR REPLACE MACRO fw_pid_body(g) AS CASE
    WHEN regexp_full_match(g, '[0-9]{{17}}[0-9X]') THEN g[1:17]
    WHEN regexp_full_match(g, '[0-9]{{15}}') THEN g[1:6] || '19' || g[7:15] END;
CREATE OR REPLACE MACRO fw_pid_check(b) AS substr('10X98765432', (({_PID_SUM}) % 11) + 1, 1);
CREATE OR REPLACE MACRO fw_pid_birth(b) AS CAST(try_strptime(b[7:14], '%Y%m%d') AS DATE);
-- g: upper-cased ID text. No NFKC: the clean synth layout writes ASCII IDs.
CREATE OR REPLACE MACRO fw_uscc_valid(g) AS CASE WHEN g IS NULL THEN NULL ELSE coalesce(
    regexp_full_match(g, '[0-9A-HJ-NPQRTUWXY]{{18}}')
    AND instr('{_USCC_CHARSET}', g[18]) - 1 = (31 - ({_USCC_SUM}) % 31) % 31, false) END;
CREATE OR REPLACE MACRO fw_money(x) AS CAST(fw_text(x) AS DECIMAL(18,2));
CREATE OR REPLACE MACRO fw_date(x) AS CAST(fw_text(x) AS DATE);
CREATE OR REPLACE MACRO fw_period(x) AS CAST(fw_text(x) || '-01' AS DATE);
"""

_PERSON = "person_id, person_id_valid"


def _with_person_id(source: str) -> str:
    """``source`` with its raw ``person_id`` replaced by the canonical ID and ``person_id_valid``:
    15-digit IDs upgraded (insert 19, append the check character), 18-char IDs checked (mod 11-2),
    the embedded birth date real and not before 1800; an invalid ID is kept as given (upper-cased)."""
    return f"""(SELECT * EXCLUDE (_g, _b, _c, _ok),
            CASE WHEN length(_g) = 15 AND _ok THEN _b || _c ELSE _g END AS person_id,
            CASE WHEN _g IS NULL THEN NULL ELSE coalesce(_ok, false) END AS person_id_valid
        FROM (SELECT *, (length(_g) = 15 OR _g[18] = _c)
                        AND fw_pid_birth(_b) IS NOT NULL AND year(fw_pid_birth(_b)) >= 1800 AS _ok
              FROM (SELECT *, fw_pid_check(_b) AS _c
                    FROM (SELECT *, fw_pid_body(_g) AS _b
                          FROM (SELECT * EXCLUDE (person_id), upper(fw_text(person_id)) AS _g FROM {source})))))"""

SELECTS = {
    "pension_payments": f"""SELECT fw_text(payment_id) AS payment_id, {_PERSON}, fw_text(name) AS name,
        fw_text(scheme) AS scheme, fw_text(region_code) AS region_code, fw_period(period) AS period,
        fw_money(amount) AS amount, fw_date(pay_date) AS pay_date, fw_text(bank_account) AS bank_account""",
    "subsidy_payments": f"""SELECT fw_text(payment_id) AS payment_id, {_PERSON}, fw_text(name) AS name,
        fw_text(program) AS program, fw_text(region_code) AS region_code, fw_period(period) AS period,
        fw_money(amount) AS amount""",
    "deaths": f"""SELECT {_PERSON}, fw_text(name) AS name, fw_date(death_date) AS death_date,
        fw_text(source) AS source, fw_text(record_id) AS record_id""",
    "household": f"""SELECT {_PERSON}, fw_text(name) AS name, fw_date(birth_date) AS birth_date,
        fw_text(household_id) AS household_id, fw_text(region_code) AS region_code, fw_text(status) AS status,
        fw_date(cancel_date) AS cancel_date, fw_text(cancel_reason) AS cancel_reason""",
    "prisoners": f"""SELECT {_PERSON}, fw_text(name) AS name, fw_date(admission_date) AS admission_date,
        fw_date(release_date) AS release_date, fw_text(sentence_type) AS sentence_type""",
    "stabilization_refunds": """SELECT fw_text(refund_id) AS refund_id, upper(fw_text(firm_id)) AS firm_id,
        fw_text(firm_name) AS firm_name, lower(fw_text(is_labor_dispatch)) IN ('true', '1', 'y', 'yes', '是') AS is_labor_dispatch,
        fw_text(region_code) AS region_code, fw_money(amount) AS amount, fw_money(dispatched_amount) AS dispatched_amount,
        fw_date(paid_date) AS paid_date""",
    "refund_transfers": """SELECT fw_text(transfer_id) AS transfer_id, upper(fw_text(firm_id)) AS firm_id,
        upper(fw_text(recipient_id)) AS recipient_id, fw_uscc_valid(upper(fw_text(recipient_id))) AS recipient_id_valid,
        fw_money(amount) AS amount, fw_date(transfer_date) AS transfer_date""",
}


def landing_files(landing: Path, extract: str) -> list[Path]:
    """``<extract>.csv`` and ``<extract>_*.csv`` in the landing folder, sorted."""
    return sorted(p for p in Path(landing).glob(f"{extract}*.csv")
                  if p.stem == extract or p.stem[len(extract)] in "_-.")


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(memory_limit: str | None = None, threads: int | None = None, temp_directory: Path | None = None,
            database: Path | None = None):
    config: dict = {}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    if temp_directory:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    con = duckdb.connect(str(database) if database else ":memory:", config=config)
    con.execute(MACROS)
    return con


def convert(landing: Path, out_dir: Path, memory_limit: str | None = None, threads: int | None = None) -> dict:
    """CSV extracts → one typed Parquet file per extract in ``out_dir``. Returns rows and seconds per extract."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = connect(memory_limit, threads, out_dir / "_tmp")
    report = {}
    try:
        for extract in EXTRACTS:
            files = landing_files(landing, extract)
            if not files:
                continue
            started = time.perf_counter()
            target = out_dir / f"{extract}.parquet"
            source = f"read_csv({_sql_list(files)}, header = true, all_varchar = true)"
            if "person_id_valid" in SELECTS[extract]:
                source = _with_person_id(source)
            rows = con.execute(
                f"COPY ({SELECTS[extract]} FROM {source}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
            ).fetchone()[0]
            report[extract] = {"rows": rows, "seconds": round(time.perf_counter() - started, 3),
                               "bytes": target.stat().st_size}
    finally:
        con.close()
    return report


# --------------------------------------------------------------------------- the queries

_DEATH_MONTHS = f"""
    death_month AS (
        -- earliest death over the deaths extract and household cancellations for death, per ID
        -- (valid or not: an invalid ID is an identifier too, suspects.md)
        SELECT person_id, CAST(date_trunc('month', min(death_date)) AS DATE) AS death_month
        FROM (SELECT person_id, person_id_valid, death_date FROM deaths
              UNION ALL
              SELECT person_id, person_id_valid, cancel_date FROM household
              WHERE status = '注销' AND cancel_reason = '死亡')
        WHERE person_id IS NOT NULL AND death_date IS NOT NULL
        GROUP BY person_id
    )"""


def _after_death(category: str, table: str) -> str:
    return f"""
WITH {_DEATH_MONTHS},
improper_month AS (
    SELECT p.person_id, p.period, sum(p.amount) AS amount
    FROM {table} AS p JOIN death_month AS d ON d.person_id = p.person_id
    WHERE p.period > d.death_month
    GROUP BY p.person_id, p.period
    HAVING sum(p.amount) > 0
)
SELECT '{category}' AS category, person_id AS subject_id, CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk
FROM improper_month GROUP BY person_id"""


QUERIES: dict[str, str] = {
    "paid_after_death": _after_death("paid_after_death", "pension_payments"),
    "subsidy_after_death": _after_death("subsidy_after_death", "subsidy_payments"),
    "duplicate_cross_region": """
WITH several AS (
    -- only people paid one scheme by two or more regions can overlap
    SELECT person_id, scheme FROM pension_payments WHERE person_id IS NOT NULL
    GROUP BY person_id, scheme HAVING count(DISTINCT region_code) >= 2
),
paid AS (
    SELECT p.person_id, p.scheme, p.region_code, p.period, sum(p.amount) AS amount
    FROM pension_payments AS p JOIN several AS s ON s.person_id = p.person_id AND s.scheme = p.scheme
    GROUP BY p.person_id, p.scheme, p.region_code, p.period
    HAVING sum(p.amount) > 0
),
started AS (
    SELECT *, min(period) OVER (PARTITION BY person_id, scheme, region_code) AS started FROM paid
),
ranked AS (
    SELECT *, count(*) OVER (PARTITION BY person_id, scheme, period) AS regions,
           row_number() OVER (PARTITION BY person_id, scheme, period ORDER BY started, region_code) AS keep_rank
    FROM started
)
SELECT 'duplicate_cross_region' AS category, person_id AS subject_id,
       CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk
FROM ranked WHERE regions >= 2 AND keep_rank > 1 GROUP BY person_id""",
    "duplicate_cross_scheme": """
WITH mixed AS (
    SELECT person_id FROM pension_payments
    WHERE person_id IS NOT NULL AND scheme IN ('110', '120', '170')
    GROUP BY person_id HAVING bool_or(scheme = '170') AND bool_or(scheme <> '170')
),
kinds AS (
    SELECT p.person_id, p.period, p.scheme = '170' AS resident, sum(p.amount) AS amount
    FROM pension_payments AS p JOIN mixed AS m ON m.person_id = p.person_id
    WHERE p.scheme IN ('110', '120', '170')
    GROUP BY p.person_id, p.period, p.scheme = '170'
    HAVING sum(p.amount) > 0
),
overlap AS (
    SELECT person_id, period, sum(amount) FILTER (WHERE resident) AS resident_amount
    FROM kinds GROUP BY person_id, period HAVING count(*) = 2
)
SELECT 'duplicate_cross_scheme' AS category, person_id AS subject_id,
       CAST(sum(resident_amount) AS DECIMAL(18,2)) AS amount_at_risk
FROM overlap GROUP BY person_id HAVING sum(resident_amount) > 0""",
    "paid_during_imprisonment": f"""
WITH spells AS (
    SELECT person_id, release_date,
           CAST(date_trunc('month', admission_date) AS DATE) AS admission_month,
           CAST(date_trunc('month', release_date) AS DATE) AS release_month
    FROM prisoners
    WHERE person_id IS NOT NULL
      AND (sentence_type IS NULL OR sentence_type IN ({", ".join(f"'{s}'" for s in STOPPING_SENTENCES)}))
),
inside AS (
    -- each payment once, however many spells it falls in (payment_id is unique)
    SELECT DISTINCT p.payment_id, p.person_id, p.period, p.amount
    FROM pension_payments AS p JOIN spells AS s ON s.person_id = p.person_id
    WHERE p.period > s.admission_month
      AND (p.period < s.release_month
           OR (s.release_date IS NULL AND p.period <= CAST(date_trunc('month', $as_of) AS DATE)))
),
improper_month AS (
    SELECT person_id, period, sum(amount) AS amount FROM inside
    GROUP BY person_id, period HAVING sum(amount) > 0
)
SELECT 'paid_during_imprisonment' AS category, person_id AS subject_id,
       CAST(sum(amount) AS DECIMAL(18,2)) AS amount_at_risk
FROM improper_month GROUP BY person_id""",
    "refund_retained": """
WITH RECURSIVE refunds AS (
    SELECT firm_id, refund_id, paid_date, paid_date + CAST($deadline_days AS INTEGER) AS deadline,
           CAST(dispatched_amount AS DECIMAL(38,2)) AS need,
           row_number() OVER (PARTITION BY firm_id ORDER BY paid_date, refund_id) AS seq
    FROM stabilization_refunds WHERE is_labor_dispatch AND dispatched_amount > 0
),
eligible AS (
    SELECT firm_id, amount, transfer_date FROM refund_transfers
    WHERE recipient_id_valid AND recipient_id <> firm_id AND amount > 0
),
ledger AS (
    -- a refund's window as positions on the firm's running total of eligible transfers
    SELECT r.firm_id, r.seq, r.need, r.deadline,
           CAST(coalesce(sum(e.amount) FILTER (WHERE e.transfer_date < r.paid_date), 0) AS DECIMAL(38,2)) AS lo,
           CAST(coalesce(sum(e.amount) FILTER (WHERE e.transfer_date <= r.deadline), 0) AS DECIMAL(38,2)) AS hi
    FROM refunds AS r LEFT JOIN eligible AS e ON e.firm_id = r.firm_id
    GROUP BY r.firm_id, r.seq, r.need, r.deadline
),
fifo(firm_id, seq, need, deadline, taken, upto) AS (
    SELECT firm_id, seq, need, deadline, least(need, greatest(hi - lo, 0)), lo + least(need, greatest(hi - lo, 0))
    FROM ledger WHERE seq = 1
    UNION ALL
    SELECT l.firm_id, l.seq, l.need, l.deadline,
           least(l.need, greatest(l.hi - greatest(f.upto, l.lo), 0)),
           greatest(f.upto, l.lo) + least(l.need, greatest(l.hi - greatest(f.upto, l.lo), 0))
    FROM fifo AS f JOIN ledger AS l ON l.firm_id = f.firm_id AND l.seq = f.seq + 1
)
SELECT 'refund_retained' AS category, firm_id AS subject_id,
       CAST(sum(need - taken) AS DECIMAL(18,2)) AS amount_at_risk
FROM fifo WHERE $as_of > deadline AND need - taken > 0 GROUP BY firm_id""",
}


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def create_views(con, parquet_dir: Path, tables: bool = False) -> None:
    """Name each extract's Parquet file as a view -- or, with ``tables``, copy it into a DuckDB table
    (the storage the pipeline's warehouse uses)."""
    for extract in EXTRACTS:
        path = Path(parquet_dir) / f"{extract}.parquet"
        if path.exists():
            kind = "TABLE" if tables else "VIEW"
            con.execute(f"CREATE OR REPLACE {kind} {extract} AS SELECT * FROM read_parquet('{path}')")


def run_queries(con, as_of: date, deadline_days: int = 60, categories=CATEGORIES):
    """Run the queries on ``con`` (views already defined). Returns (pyarrow table, seconds per category)."""
    import pyarrow as pa

    tables, seconds = [], {}
    for category in categories:
        sql = QUERIES[category]
        params = {k: v for k, v in {"as_of": as_of, "deadline_days": deadline_days}.items() if f"${k}" in sql}
        started = time.perf_counter()
        tables.append(con.sql(sql, params=params).to_arrow_table())
        seconds[category] = round(time.perf_counter() - started, 3)
    schema = pa.schema([("category", pa.string()), ("subject_id", pa.string()), ("amount_at_risk", pa.decimal128(18, 2))])
    table = pa.concat_tables([t.cast(schema) for t in tables]).sort_by([("category", "ascending"), ("subject_id", "ascending")])
    return table, seconds


def run(parquet_dir: Path, as_of: date, out: Path | None = None, deadline_days: int = 60,
        memory_limit: str | None = None, threads: int | None = None, tables: bool = False) -> dict:
    """The six queries over the Parquet files (``tables``: over DuckDB tables loaded from them first,
    in a database file next to them; the copy is timed separately as ``load_seconds``)."""
    database = Path(parquet_dir) / "_floor.duckdb"
    database.unlink(missing_ok=True)
    con = connect(memory_limit, threads, Path(parquet_dir) / "_tmp", database if tables else None)
    load_seconds = None
    try:
        started = time.perf_counter()
        create_views(con, parquet_dir, tables)
        if tables:
            con.execute("CHECKPOINT")
            load_seconds = round(time.perf_counter() - started, 3)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        table, seconds = run_queries(con, as_of, deadline_days)
        total, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    finally:
        con.close()
        database.unlink(missing_ok=True)
        Path(str(database) + ".wal").unlink(missing_ok=True)
    if out is not None:
        import pyarrow.parquet as pq
        pq.write_table(table, out)
    counts: dict[str, int] = {}
    for c in table.column("category").to_pylist():
        counts[c] = counts.get(c, 0) + 1
    return {"storage": "duckdb tables" if tables else "parquet", "load_seconds": load_seconds,
            "seconds": round(total, 3), "cpu_seconds": round(cpu, 2), "seconds_per_category": seconds,
            "rows_per_category": counts}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="CSV extracts -> typed Parquet, one file per extract")
    c.add_argument("--landing", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="the six category queries over the Parquet files")
    r.add_argument("--parquet", type=Path, required=True)
    r.add_argument("--as-of", type=date.fromisoformat, required=True)
    r.add_argument("--deadline-days", type=int, default=60)
    r.add_argument("--out", type=Path)
    r.add_argument("--tables", action="store_true", help="copy the Parquet files into DuckDB tables first (timed apart)")
    for p in (c, r):
        p.add_argument("--memory-limit")
        p.add_argument("--threads", type=int)
        p.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.command == "convert":
        result = convert(args.landing, args.out, args.memory_limit, args.threads)
    else:
        result = run(args.parquet, args.as_of, args.out, args.deadline_days, args.memory_limit, args.threads, args.tables)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
