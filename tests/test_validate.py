"""Tests for pipelines.validate (DuckDB full-data checks) and pipelines.ge_suite (GE on a sample).

Staged Parquet is built with polars in the canonical types of docs/architecture.md; every check
is shown to fail on data made to break it and to pass on clean data.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines import ge_suite
from pipelines.contracts import Contract, ValueType, load_contracts
from pipelines.errors import ValidationFailed
from pipelines.validate import ExtractValidation, raise_for_failures, validate_extract

TODAY = dt.date(2025, 6, 30)
CONTRACTS = load_contracts()
PENSION = CONTRACTS["pension_payments"]


# --------------------------------------------------------------------------- builders


def staged_frame(contract: Contract, n: int, source_file: str) -> pl.DataFrame:
    """``n`` clean staged rows for ``contract``: canonical columns, derived columns, bookkeeping."""
    tag = Path(source_file).stem
    cols: dict[str, pl.Series] = {}
    for c in contract.columns:
        t = c.type
        if t is ValueType.person_id:
            cols[c.name] = pl.Series([f"11010119500101{i % 1000:03d}X" for i in range(n)], dtype=pl.Utf8)
            cols[f"{c.name}_valid"] = pl.Series([True] * n, dtype=pl.Boolean)
            cols[f"{c.name}_birth_date"] = pl.Series([dt.date(1950, 1, 1)] * n, dtype=pl.Date)
            cols[f"{c.name}_gender"] = pl.Series(["女"] * n, dtype=pl.Utf8)
        elif t is ValueType.firm_id:
            cols[c.name] = pl.Series([f"91110000{i:09d}X" for i in range(n)], dtype=pl.Utf8)
            cols[f"{c.name}_valid"] = pl.Series([True] * n, dtype=pl.Boolean)
        elif t is ValueType.name:
            cols[c.name] = pl.Series(["张三"] * n, dtype=pl.Utf8)
            cols[f"{c.name}_raw"] = pl.Series(["张 三"] * n, dtype=pl.Utf8)
        elif t is ValueType.date:
            cols[c.name] = pl.Series([dt.date(2024, 1, 5)] * n, dtype=pl.Date)
        elif t is ValueType.period:
            cols[c.name] = pl.Series([dt.date(2024, 1, 1)] * n, dtype=pl.Date)
        elif t is ValueType.money:
            cols[c.name] = pl.Series([Decimal("1234.50")] * n, dtype=pl.Decimal(18, 2))
        elif t is ValueType.scheme:
            cols[c.name] = pl.Series(["110"] * n, dtype=pl.Utf8)
        elif t is ValueType.region_code:
            cols[c.name] = pl.Series(["110101"] * n, dtype=pl.Utf8)
        elif t is ValueType.boolean:
            cols[c.name] = pl.Series([True] * n, dtype=pl.Boolean)
        elif t is ValueType.enum:
            cols[c.name] = pl.Series([next(iter(c.values))] * n, dtype=pl.Utf8)
        else:
            cols[c.name] = pl.Series([f"{tag}-{i}" for i in range(n)], dtype=pl.Utf8)
    cols["_source_file"] = pl.Series([source_file] * n, dtype=pl.Utf8)
    cols["_source_row"] = pl.Series(range(2, n + 2), dtype=pl.Int64)
    cols["_file_sha256"] = pl.Series(["0" * 64] * n, dtype=pl.Utf8)
    return pl.DataFrame(cols)


def set_rows(df: pl.DataFrame, column: str, value, rows: range | None = None) -> pl.DataFrame:
    """``df`` with ``column`` set to ``value`` (same dtype) on ``rows`` (default: all)."""
    mask = pl.Series([rows is None or i in rows for i in range(df.height)])
    return df.with_columns(
        pl.when(mask).then(pl.lit(value, dtype=df.schema[column])).otherwise(pl.col(column)).alias(column)
    )


def stage(tmp_path: Path, *frames: pl.DataFrame) -> tuple[list[Path], dict[str, int], dict[str, int]]:
    """Write frames as staged Parquet; counts as ingest reports them (nothing quarantined)."""
    paths, read = [], {}
    for i, df in enumerate(frames):
        path = tmp_path / "staged" / f"part-{i:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(path)
        paths.append(path)
        for f, n in df.group_by("_source_file").len().iter_rows() if "_source_file" in df.columns else []:
            read[f] = read.get(f, 0) + n
    return paths, read, {f: 0 for f in read}


def run(tmp_path, contract, frames, read=None, quarantined=None, **kw) -> ExtractValidation:
    paths, r, q = stage(tmp_path, *frames)
    return validate_extract(
        contract, paths, read if read is not None else r, quarantined if quarantined is not None else q,
        tmp_path / "report", today=TODAY, **kw,
    )


def failed(v: ExtractValidation, name: str, column: str | None = None):
    return [c for c in v.checks if c.name == name and not c.passed and (column is None or c.column == column)]


def ge_results(v: ExtractValidation) -> list[dict]:
    return json.loads(Path(v.ge_result_path).read_text(encoding="utf-8"))["results"]


def assert_ge_ran_cleanly(v: ExtractValidation) -> None:
    """No GE expectation errored (an errored expectation 'fails' without judging the data)."""
    for r in ge_results(v):
        info = r["exception_info"]
        raised = info.get("raised_exception") or any(
            isinstance(x, dict) and x.get("raised_exception") for x in info.values()
        )
        assert not raised, (r["expectation_config"]["type"], info)


# --------------------------------------------------------------------------- clean extract


def test_clean_extract_passes_and_writes_one_report(tmp_path):
    df = staged_frame(PENSION, 30, "pension_payments_202401.csv")
    v = run(tmp_path, PENSION, [df])
    assert v.passed, [c for c in v.checks if not c.passed]
    assert not v.errors and not v.warnings
    raise_for_failures(v)  # no error
    assert v.rows == 30 and v.sample_size == 30
    assert v.ge_success is True
    assert_ge_ran_cleanly(v)
    report = json.loads(v.report_path.read_text(encoding="utf-8"))
    assert report["passed"] is True and report["ge_success"] is True
    assert {c["name"] for c in report["checks"]} >= {"has_rows", "broken_rate", "valid_id_rate", "required_not_null"}
    assert report["ge_summary"]["statistics"]["unsuccessful_expectations"] == 0
    assert not (tmp_path / "report" / "data_docs").exists()  # GE's CDN-bound Data Docs are not built


def test_all_contracts_validate_clean(tmp_path):
    for name, contract in CONTRACTS.items():
        v = run(tmp_path / name, contract, [staged_frame(contract, 5, f"{name}.csv")])
        assert v.passed and not v.warnings, (name, [c for c in v.checks if not c.passed])
        assert v.ge_success is True, (name, v.ge_summary)
        assert_ge_ran_cleanly(v)


# --------------------------------------------------------------------------- errors


def test_empty_extract_fails_naming_file(tmp_path):
    df = staged_frame(PENSION, 0, "pension_payments_202401.csv")
    v = run(tmp_path, PENSION, [df], read={"pension_payments_202401.csv": 0},
            quarantined={"pension_payments_202401.csv": 0})
    assert not v.passed and failed(v, "has_rows")
    assert v.ge_success is None and v.sample_size == 0
    with pytest.raises(ValidationFailed) as exc:
        raise_for_failures(v)
    assert exc.value.file == "pension_payments_202401.csv"
    assert "no clean rows" in str(exc.value) and "hint" in str(exc.value)


def test_no_staged_files_fails(tmp_path):
    v = validate_extract(PENSION, [], {"pension_payments.csv": 3}, {"pension_payments.csv": 3},
                         tmp_path / "report", today=TODAY)
    assert not v.passed
    assert failed(v, "has_rows") and failed(v, "broken_rate")
    with pytest.raises(ValidationFailed, match="no clean rows") as exc:
        raise_for_failures(v)
    assert "pension_payments.csv" in exc.value.file


def test_too_many_quarantined_fails_naming_worst_file(tmp_path):
    good = staged_frame(PENSION, 10, "good.csv")
    bad = staged_frame(PENSION, 2, "bad.csv")
    v = run(tmp_path, PENSION, [good, bad], read={"good.csv": 10, "bad.csv": 40},
            quarantined={"good.csv": 0, "bad.csv": 38})
    [check] = failed(v, "broken_rate")
    assert check.severity == "error" and check.observed == pytest.approx(38 / 50)
    assert check.files == ["bad.csv"]
    with pytest.raises(ValidationFailed, match=r"38 of 50 rows quarantined") as exc:
        raise_for_failures(v)
    assert exc.value.file == "bad.csv"


def test_broken_rate_at_limit_passes_but_bad_file_warns(tmp_path):
    good = staged_frame(PENSION, 10, "good.csv")
    bad = staged_frame(PENSION, 1, "bad.csv")
    # 10 of 20 quarantined = exactly 50 %: allowed; bad.csv alone is 9/10 broken: warning.
    v = run(tmp_path, PENSION, [good, bad], read={"good.csv": 10, "bad.csv": 10},
            quarantined={"good.csv": 0, "bad.csv": 9})
    assert v.passed
    [warn] = failed(v, "broken_rate_file")
    assert warn.files == ["bad.csv"] and warn.severity == "warning"


def test_low_valid_id_rate_fails_naming_file(tmp_path):
    good = staged_frame(PENSION, 20, "jan.csv")
    bad = set_rows(staged_frame(PENSION, 20, "feb.csv"), "person_id_valid", False, range(0, 12))
    v = run(tmp_path, PENSION, [good, bad])  # 28 / 40 = 70 % < 90 %
    [check] = failed(v, "valid_id_rate", "person_id")
    assert check.observed == pytest.approx(0.7) and check.expected == 0.9
    assert check.files == ["feb.csv"]
    with pytest.raises(ValidationFailed, match="valid checksum") as exc:
        raise_for_failures(v)
    assert exc.value.file == "feb.csv" and "re-export" in str(exc.value)
    # GE mirrors it on the sample (mean of person_id_valid below min_valid_rate).
    assert v.ge_success is False
    assert any(f["expectation"] == "expect_column_mean_to_be_between" for f in v.ge_summary["failed_expectations"])


def test_valid_id_rate_at_minimum_passes(tmp_path):
    df = set_rows(staged_frame(PENSION, 10, "jan.csv"), "person_id_valid", False, range(0, 1))  # 90 %
    v = run(tmp_path, PENSION, [df])
    assert v.passed and not failed(v, "valid_id_rate")


def test_required_column_entirely_null_fails(tmp_path):
    df = set_rows(staged_frame(PENSION, 10, "pension_payments_202401.csv"), "name", None)
    v = run(tmp_path, PENSION, [df])
    [check] = failed(v, "required_not_null", "name")
    assert check.severity == "error"
    with pytest.raises(ValidationFailed, match="required column name is entirely null") as exc:
        raise_for_failures(v)
    assert exc.value.file == "pension_payments_202401.csv"
    assert "header" in str(exc.value)  # says what to fix


def test_required_column_null_in_one_file_fails_for_that_file(tmp_path):
    ok = staged_frame(PENSION, 10, "jan.csv")
    broken = set_rows(staged_frame(PENSION, 10, "feb.csv"), "amount", None)
    v = run(tmp_path, PENSION, [ok, broken])
    [check] = failed(v, "required_not_null", "amount")
    assert check.files == ["feb.csv"]


def test_some_required_nulls_only_warn(tmp_path):
    df = set_rows(staged_frame(PENSION, 10, "jan.csv"), "name", None, range(0, 2))
    v = run(tmp_path, PENSION, [df])
    assert v.passed
    [warn] = failed(v, "required_nulls", "name")
    assert warn.observed == 2 and warn.severity == "warning"


def test_required_when_all_missing_fails(tmp_path):
    contract = CONTRACTS["stabilization_refunds"]
    df = set_rows(staged_frame(contract, 6, "refunds.csv"), "dispatched_amount", None)
    v = run(tmp_path, contract, [df])
    [check] = failed(v, "required_when", "dispatched_amount")
    assert check.severity == "error" and not v.passed
    # Not a dispatch firm -> no amount needed.
    df = set_rows(df, "is_labor_dispatch", False)
    v = run(tmp_path / "2", contract, [df])
    assert v.passed and not failed(v, "required_when")


@pytest.mark.parametrize(
    "column, dtype, duck_type, expected",
    [
        ("amount", pl.Float64, "DOUBLE", "DECIMAL(18,2)"),
        ("amount", pl.Utf8, "VARCHAR", "DECIMAL(18,2)"),
        ("region_code", pl.Int64, "BIGINT", "VARCHAR"),
        ("person_id_valid", pl.Utf8, "VARCHAR", "BOOLEAN"),
        ("period", pl.Utf8, "VARCHAR", "DATE"),
    ],
)
def test_wrong_staged_type_fails(tmp_path, column, dtype, duck_type, expected):
    df = staged_frame(PENSION, 5, "jan.csv").with_columns(pl.col(column).cast(dtype))
    v = run(tmp_path, PENSION, [df])
    [check] = failed(v, "column_type", column)
    assert check.observed == duck_type and check.expected == expected and not v.passed
    # The ill-typed column is left out of the sample: GE runs cleanly and reports it as absent
    # when the contract requires it.
    assert_ge_ran_cleanly(v)
    assert v.ge_success is not (column in {c.name for c in PENSION.required})
    with pytest.raises(ValidationFailed, match=expected.replace("(", r"\(").replace(")", r"\)")) as exc:
        raise_for_failures(v)
    assert exc.value.file == "jan.csv" and "fix ingest" in str(exc.value)


def test_staged_without_source_file_still_counts_rows(tmp_path):
    df = staged_frame(PENSION, 5, "jan.csv").drop("_source_file")
    v = run(tmp_path, PENSION, [df], read={}, quarantined={})
    assert [c.severity for c in failed(v, "column_present", "_source_file")] == ["error"]
    assert not failed(v, "has_rows") and v.rows == 5
    assert v.ge_success is None  # no row identity, no deterministic sample


def test_missing_required_column_fails_optional_warns(tmp_path):
    df = staged_frame(PENSION, 5, "jan.csv").drop("region_code", "bank_account")
    v = run(tmp_path, PENSION, [df])
    assert [c.severity for c in failed(v, "column_present", "region_code")] == ["error"]
    assert [c.severity for c in failed(v, "column_present", "bank_account")] == ["warning"]
    assert not v.passed


def test_missing_staged_file_raises(tmp_path):
    with pytest.raises(ValidationFailed, match="not found") as exc:
        validate_extract(PENSION, [tmp_path / "nope.parquet"], {}, {}, tmp_path / "report")
    assert exc.value.file.endswith("nope.parquet")


# --------------------------------------------------------------------------- warnings


WARNINGS = [
    ("out_of_range_amount", "amount", Decimal("2000000.00"), "value_range", "amount"),
    ("out_of_range_period", "period", dt.date(1980, 1, 1), "value_range", "period"),
    ("bad_scheme", "scheme", "999", "allowed_values", "scheme"),
    ("bad_region", "region_code", "12345", "value_format", "region_code"),
    ("valid_but_malformed_id", "person_id", "123", "value_format", "person_id"),
    ("seven_digit_region", "region_code", "1101011", "value_format", "region_code"),
    ("full_width_region", "region_code", "１１０１０１", "value_format", "region_code"),
    ("x_inside_valid_id", "person_id", "11010119500X150013", "value_format", "person_id"),
    ("lower_x_valid_id", "person_id", "11010119500315001x", "value_format", "person_id"),
    ("future_date", "pay_date", dt.date(2025, 7, 1), "future_dates", "pay_date"),
]


@pytest.mark.parametrize("case, column, value, check, check_column", WARNINGS, ids=[w[0] for w in WARNINGS])
def test_warnings_are_reported_but_do_not_stop(tmp_path, case, column, value, check, check_column):
    df = set_rows(staged_frame(PENSION, 10, "jan.csv"), column, value, range(3, 5))
    v = run(tmp_path, PENSION, [df], sample_rows=0)  # DuckDB checks only
    assert v.ge_success is None and v.ge_result_path is None
    [warn] = failed(v, check, check_column)
    assert warn.severity == "warning" and warn.observed == 2 and warn.files == ["jan.csv"]
    assert v.passed and not v.errors
    raise_for_failures(v)  # warnings never raise
    assert [c.name for c in v.warnings] == [check]


def test_today_is_not_future(tmp_path):
    df = set_rows(staged_frame(PENSION, 3, "jan.csv"), "pay_date", TODAY)
    v = run(tmp_path, PENSION, [df])
    assert not failed(v, "future_dates")


def test_enum_outside_set_warns(tmp_path):
    contract = CONTRACTS["deaths"]
    df = set_rows(staged_frame(contract, 4, "deaths.csv"), "source", "police", range(0, 1))
    v = run(tmp_path, contract, [df])
    [warn] = failed(v, "allowed_values", "source")
    assert "police" in warn.message and v.passed


def test_duplicates_across_files_warn_with_count(tmp_path):
    jan = staged_frame(PENSION, 5, "jan.csv")
    feb = staged_frame(PENSION, 5, "feb.csv").with_columns(jan["payment_id"].alias("payment_id"))
    v = run(tmp_path, PENSION, [jan, feb])
    [warn] = failed(v, "unique", "payment_id")
    assert warn.observed == 5 and warn.severity == "warning" and warn.files == ["feb.csv", "jan.csv"]
    assert v.passed
    assert any(f["expectation"] == "expect_column_values_to_be_unique" for f in v.ge_summary["failed_expectations"])


def test_rows_not_accounted_for_warn(tmp_path):
    df = staged_frame(PENSION, 5, "jan.csv")
    v = run(tmp_path, PENSION, [df], read={"jan.csv": 9}, quarantined={"jan.csv": 1})
    [warn] = failed(v, "rows_accounted")
    assert warn.observed == 6 and warn.expected == 9 and v.passed


# --------------------------------------------------------------------------- great expectations


def test_ge_flags_bad_sample_and_writes_docs(tmp_path):
    df = set_rows(staged_frame(PENSION, 20, "jan.csv"), "region_code", "12345", range(7, 8))
    df = set_rows(df, "period", dt.date(2101, 1, 1), range(9, 10))
    df = set_rows(df, "person_id", None, range(11, 12))  # null ID -> null valid flag in the sample
    df = set_rows(df, "person_id_valid", None, range(11, 12))
    v = run(tmp_path, PENSION, [df])
    assert v.passed  # warnings only: GE results are reported, never fatal
    assert v.ge_success is False
    assert_ge_ran_cleanly(v)
    by_type = {(f["expectation"], f["column"]): f for f in v.ge_summary["failed_expectations"]}
    regex = by_type[("expect_column_values_to_match_regex", "region_code")]
    assert regex["unexpected_count"] == 1
    assert regex["examples"] == [{"_source_file": "jan.csv", "_source_row": 9, "region_code": "12345"}]
    assert by_type[("expect_column_values_to_be_between", "period")]["unexpected_count"] == 1
    assert ("expect_column_values_to_not_be_null", "person_id") in by_type
    assert json.loads(v.ge_result_path.read_text(encoding="utf-8"))["success"] is False


def test_sample_is_bounded_and_deterministic(tmp_path):
    frames = [staged_frame(PENSION, 300, "jan.csv"), staged_frame(PENSION, 300, "feb.csv")]
    paths, _, _ = stage(tmp_path, *frames)
    con = duckdb.connect()
    columns = {r[0]: r[1] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet({[str(p) for p in paths]})").fetchall()}

    def draw(files):
        source = f"read_parquet({[str(p) for p in files]}, union_by_name = true)"
        s = ge_suite.sample_frame(con, source, PENSION, columns, 600, 50)
        return list(zip(s["_source_file"], s["_source_row"]))

    first = draw(paths)
    assert len(first) == 50 and len(set(first)) == 50
    assert draw(paths) == first
    assert draw(list(reversed(paths))) == first  # chosen by (file, row), not by read order
    assert {f for f, _ in first} == {"jan.csv", "feb.csv"}  # spread over files, not the first 50 rows
    # The sample is GE-friendly: money as float, dates as nanosecond timestamps.
    s = ge_suite.sample_frame(con, f"read_parquet({[str(p) for p in paths]})", PENSION, columns, 600, 5)
    assert str(s["amount"].dtype) == "float64" and str(s["period"].dtype) == "datetime64[ns]"


def test_sample_clamps_dates_outside_pandas_range(tmp_path):
    df = set_rows(staged_frame(PENSION, 3, "jan.csv"), "pay_date", dt.date(9999, 12, 31), range(0, 1))
    v = run(tmp_path, PENSION, [df])
    assert failed(v, "future_dates", "pay_date")[0].observed == 1
    assert_ge_ran_cleanly(v)
    assert any(f["column"] == "pay_date" for f in v.ge_summary["failed_expectations"])


def test_analytics_disabled_in_context(tmp_path):
    context = ge_suite.open_context(tmp_path)
    assert context.variables.analytics_enabled is False
    assert not context.variables.data_docs_sites  # no GE Data Docs (they need the internet)
