"""Reading the coming payroll file: the project's own reader and normalisation under the
``pension_payments`` data contract, bad rows quarantined exactly as ingest does (file, row,
reason, raw values), plus ``duplicate_id`` for a payment id repeated in the file (the second
and later rows, as the warehouse load does)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.contracts import DEFAULT_CONTRACTS_DIR, load_contracts
from pipelines.engine import Engine
from pipelines.errors import ExtractError
from pipelines.ingest import FORMATS, IngestResult, check_broken_rate, ingest_file

EXTRACT = "pension_payments"


@dataclass(frozen=True)
class Payroll:
    """The payroll file as staged: clean rows in ``table`` (a DuckDB temp table), quarantine rows."""

    path: Path
    size_bytes: int
    sha256: str
    encoding: str
    rows_read: int
    rows_clean: int
    rows_quarantined: int
    reasons: dict[str, int]
    periods: list[str]


def stage_payroll(engine: Engine, path: Path, staging: Path, quarantine_out: Path,
                  contracts_dir: Path = DEFAULT_CONTRACTS_DIR) -> Payroll:
    """Stage ``path`` and create the relation ``payroll`` (warehouse columns of pension_payments,
    ``_source_file``, ``_source_row``) in the session; write every rejected row to ``quarantine_out``.
    Raises :class:`ExtractError` for an unusable file (missing column, no rows, most rows broken)."""
    path = Path(path)
    if not path.is_file():
        raise ExtractError("payroll file not found", file=path, hint="pass the coming payroll file with --payroll")
    if path.suffix.lower() not in FORMATS:
        raise ExtractError(f"unsupported file type {path.suffix!r}", file=path, hint=f"use one of {', '.join(FORMATS)}")
    contract = load_contracts(contracts_dir)[EXTRACT]
    staging.mkdir(parents=True, exist_ok=True)
    staged = ingest_file(contract, path, path.parent, staging)
    check_broken_rate(contract, IngestResult(EXTRACT, [staged]))
    engine.register("_payroll_staged", [staged.staged_path])
    engine.register("_payroll_quarantine", [staged.quarantine_path])
    # a payment id seen on an earlier row of the file: quarantined as duplicate_id, as the load does
    duplicates = engine.materialize("_payroll_dup", """
        SELECT _source_row FROM (
            SELECT _source_row, row_number() OVER (PARTITION BY payment_id ORDER BY _source_row) AS n
            FROM _payroll_staged) WHERE n > 1""")
    engine.materialize("payroll", """
        SELECT * FROM _payroll_staged WHERE _source_row NOT IN (SELECT _source_row FROM _payroll_dup)""")
    engine.write_parquet(f"""
            SELECT extract, source_file, source_row, reason, raw_json FROM _payroll_quarantine
            UNION ALL
            SELECT '{EXTRACT}', s._source_file, s._source_row,
                   'duplicate_id: payment_id=''' || s.payment_id || ''' (first on an earlier row)',
                   CAST(to_json({{'payment_id': s.payment_id}}) AS VARCHAR)
            FROM _payroll_staged s JOIN _payroll_dup d USING (_source_row)
            ORDER BY source_row""", quarantine_out)
    engine.drop("_payroll_staged")
    engine.drop("_payroll_quarantine")
    reasons = dict(staged.reasons)
    if duplicates:
        reasons["duplicate_id"] = reasons.get("duplicate_id", 0) + duplicates
    periods = engine.query("SELECT DISTINCT strftime(period, '%Y-%m') AS p FROM payroll ORDER BY 1").column(0).to_pylist()
    return Payroll(path=path, size_bytes=staged.size_bytes, sha256=staged.sha256, encoding=staged.encoding,
                   rows_read=staged.rows_read, rows_clean=staged.rows_clean - duplicates,
                   rows_quarantined=staged.rows_quarantined + duplicates,
                   reasons=dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))), periods=periods)

