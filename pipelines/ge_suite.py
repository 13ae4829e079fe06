"""great-expectations side of validation: a suite built from a data contract, run on a bounded
deterministic sample through GE's pandas datasource, with GE's own results JSON.

The full-data checks live in :mod:`pipelines.validate` (DuckDB). GE sees only the sample: it is
for the data team's report, never for money arithmetic (DECIMAL is converted to float here).

Layout under ``report_dir``::

    gx/                      GE file context (suites, validation definitions)
    validation/<extract>.ge.json   GE's validation result for the extract

GE's own Data Docs are not built: they load about 15 assets from CDNs and render blank without
internet. :mod:`pipelines.validation_site` renders the results JSON into an offline site instead.

great_expectations is imported lazily (it takes seconds), analytics are switched off before
the import and in the context config, and no network is used.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.contracts import Column, Contract, ValueType
from pipelines.engine import Engine, as_engine

DATASOURCE_NAME = "fraudwatch_sample"
BATCH_NAME = "sample"
ROW_ID_COLUMNS = ["_source_file", "_source_row"]
SCHEMES = ["110", "120", "170"]
REGION_REGEX = r"^\d{6}$"
PERSON_ID_REGEX = r"^\d{17}[\dX]$"
FIRM_ID_REGEX = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"
# pandas nanosecond timestamps only span 1677-09-21 .. 2262-04-11: GE only works fast (and
# correctly) on datetime64[ns] columns, so sample dates are clamped into this range. A clamped
# date still lies outside any contract range and is still reported; DuckDB reports the real value.
_NS_MIN = dt.date(1678, 1, 1)
_NS_MAX = dt.date(2262, 1, 1)
_HASH_SPACE = 1 << 32

_LOCK = threading.Lock()  # GE file contexts are not safe for concurrent writers


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------- sample


def sample_frame(
    con: Engine,
    source_sql: str,
    contract: Contract,
    columns: dict[str, str],
    total_rows: int,
    sample_rows: int,
) -> pd.DataFrame:
    """Up to ``sample_rows`` staged rows as a pandas frame for GE, chosen by a hash of
    ``(_source_file, _source_row)`` so reruns over the same data draw the same rows.

    ``source_sql`` is a DuckDB FROM-clause source (e.g. ``read_parquet([...])``); ``columns``
    maps the staged column names to their DuckDB types. DECIMAL becomes DOUBLE and DATE a
    nanosecond timestamp (clamped to pandas' range): sensible for GE, not for arithmetic.
    """
    wanted = _sample_columns(contract, columns)
    select = []
    for name in wanted:
        col, typ = quote_ident(name), columns[name].upper()
        if typ.startswith("DECIMAL"):
            select.append(f"CAST({col} AS DOUBLE) AS {col}")
        elif typ == "DATE":
            select.append(
                f"CAST(LEAST(GREATEST({col}, DATE '{_NS_MIN}'), DATE '{_NS_MAX}') AS TIMESTAMP_NS) AS {col}"
            )
        else:
            select.append(col)
    # Filter on the hash first (cheap, one pass) so only ~1.1 x sample_rows rows reach the top-N.
    keep = _HASH_SPACE if total_rows <= sample_rows else int(
        min(_HASH_SPACE, _HASH_SPACE * (sample_rows * 1.1 + 1000) / total_rows)
    )
    sql = (
        f"SELECT {', '.join(select)} FROM ("
        f"  SELECT *, hash(_source_file, _source_row) AS _fw_sample_hash FROM {source_sql}"
        f") WHERE _fw_sample_hash % {_HASH_SPACE} < {keep} "
        f"ORDER BY _fw_sample_hash, _source_file, _source_row LIMIT {int(sample_rows)}"
    )
    return as_engine(con).query(sql).to_pandas()


def _sample_columns(contract: Contract, columns: dict[str, str]) -> list[str]:
    names: list[str] = []
    for col in contract.columns:
        names.append(col.name)
        if col.type in (ValueType.person_id, ValueType.firm_id):
            names.append(f"{col.name}_valid")
    names += ROW_ID_COLUMNS
    return [n for n in dict.fromkeys(names) if n in columns]


# --------------------------------------------------------------------------- suite


def build_suite(contract: Contract, present: set[str], today: dt.date):
    """The GE expectation suite mirroring the contract's checks, for columns present in the sample.

    Expectations mirroring run-stopping checks have GE severity ``critical``, the rest ``warning``.
    """
    gx = _gx()
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=contract.extract)
    add = suite.add_expectation
    expected_columns = [c.name for c in contract.columns if c.required] + ROW_ID_COLUMNS
    add(gxe.ExpectTableColumnsToMatchSet(column_set=expected_columns, exact_match=False, severity="critical"))
    add(gxe.ExpectTableRowCountToBeBetween(min_value=1, severity="critical"))
    for col in contract.columns:
        if col.name not in present:
            continue
        for expectation in _column_expectations(gxe, col, present, today):
            expectation.meta = {"contract": f"data_contracts/{contract.extract}.yaml", "column": col.name}
            add(expectation)
    return suite


def _column_expectations(gxe, col: Column, present: set[str], today: dt.date) -> list:
    name, out = col.name, []
    if col.required:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=name, severity="critical"))
    if col.unique:
        out.append(gxe.ExpectColumnValuesToBeUnique(column=name, severity="warning"))
    if col.type is ValueType.enum:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=sorted(col.values), severity="warning"))
    elif col.type is ValueType.scheme:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=SCHEMES, severity="warning"))
    elif col.type is ValueType.region_code:
        out.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=REGION_REGEX, severity="warning"))
    elif col.type in (ValueType.person_id, ValueType.firm_id) and col.min_valid_rate is not None:
        regex = PERSON_ID_REGEX if col.type is ValueType.person_id else FIRM_ID_REGEX
        out.append(
            gxe.ExpectColumnValuesToMatchRegex(column=name, regex=regex, mostly=col.min_valid_rate, severity="warning")
        )
        if f"{name}_valid" in present:
            out.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column=f"{name}_valid", min_value=col.min_valid_rate, max_value=1.0, severity="critical"
                )
            )
    elif col.type is ValueType.money and (col.min is not None or col.max is not None):
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=name, min_value=_number(col.min), max_value=_number(col.max), severity="warning"
            )
        )
    elif col.type in (ValueType.date, ValueType.period):
        low = _timestamp(col.min)
        high = _timestamp(col.max)
        if col.type is ValueType.date:
            now = pd.Timestamp(today)
            high = now if high is None else min(high, now)
        if low is not None or high is not None:
            out.append(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high, severity="warning"))
    return out


def _number(value: str | float | None) -> float | None:
    return None if value is None else float(Decimal(str(value)))


def _timestamp(value: str | float | None) -> pd.Timestamp | None:
    # Timestamp bounds, not strings: GE 1.24 turns string bounds into datetime.date, which
    # pandas refuses to compare with timestamps (the expectation then errors instead of failing).
    return None if value is None else pd.Timestamp(dt.date.fromisoformat(str(value)))


# --------------------------------------------------------------------------- context and run


def open_context(report_dir: Path):
    """The GE file context under ``report_dir/gx``: analytics off, progress bars off, no Data Docs site
    (GE's pages need the internet). Creating it takes a few tens of milliseconds."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    report_dir = Path(report_dir).resolve()
    context = gx.get_context(mode="file", project_root_dir=report_dir)
    if context.variables.analytics_enabled is not False:
        context.variables.analytics_enabled = False
        context.variables.save()
    bars = context.variables.progress_bars
    bars = bars if isinstance(bars, dict) else vars(bars) if bars is not None else {}
    if bars.get("globally", True) or bars.get("metric_calculations", True):
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    for site in list(context.variables.data_docs_sites or {}):
        context.delete_data_docs_site(site)
    return context


def run_suite(report_dir: Path, contract: Contract, sample: pd.DataFrame, today: dt.date) -> tuple[bool, Path, dict]:
    """Run the contract's suite on ``sample``; write GE's result JSON.

    Returns ``(success, result_json_path, summary)``; ``summary`` lists GE's statistics and the
    failed expectations (type, column, unexpected count, examples with their source file/row).
    """
    gx = _gx()
    report_dir = Path(report_dir)
    with _LOCK:
        context = open_context(report_dir)
        source = context.data_sources.add_or_update_pandas(DATASOURCE_NAME)
        try:
            asset = source.get_asset(contract.extract)
        except LookupError:
            asset = source.add_dataframe_asset(contract.extract)
        try:
            batch = asset.get_batch_definition(BATCH_NAME)
        except (KeyError, LookupError):
            batch = asset.add_batch_definition_whole_dataframe(BATCH_NAME)
        suite = context.suites.add_or_update(build_suite(contract, set(sample.columns), today))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=contract.extract, data=batch, suite=suite)
        )
        index_cols = [c for c in ROW_ID_COLUMNS if c in sample.columns]
        result = definition.run(
            batch_parameters={"dataframe": sample},
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": index_cols,
                "partial_unexpected_count": 20,
            },
        )
    result_json = result.to_json_dict()
    path = report_dir / "validation" / f"{contract.extract}.ge.json"
    write_json(path, result_json)
    return bool(result.success), path, summarize(result_json)


def summarize(result_json: dict) -> dict:
    """Statistics and failed expectations from a GE validation result (as JSON dict)."""
    failed = []
    for item in result_json.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config", {})
        res = item.get("result") or {}
        exc = item.get("exception_info") or {}
        raised = exc.get("raised_exception") or any(
            isinstance(v, dict) and v.get("raised_exception") for v in exc.values()
        )
        failed.append(
            {
                "expectation": config.get("type"),
                "column": config.get("kwargs", {}).get("column"),
                "severity": config.get("severity"),
                "unexpected_count": res.get("unexpected_count"),
                "unexpected_percent": res.get("unexpected_percent"),
                "observed_value": res.get("observed_value"),
                "examples": (res.get("partial_unexpected_index_list") or res.get("partial_unexpected_list") or [])[:5],
                "raised_exception": bool(raised),
            }
        )
    return {"statistics": result_json.get("statistics", {}), "failed_expectations": failed}


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), UTF-8, non-ASCII kept readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
