"""The auditors' loop on sample_data, end to end: run → export by region → two counties fill in
their workbooks (one tries to record another county's suspect: rejected) → import → progress and
ledger show it → everything but the case store deleted, rerun: every verdict kept, the 无问题
suspect held back."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import openpyxl
import pytest

from pipelines import ledger, outcomes
from pipelines.case_store import open_store
from pipelines.dispatch import export_by_region
from pipelines.errors import OutcomeError
from pipelines.pipeline import RunConfig
from pipelines.stages import run_pipeline

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
AS_OF = dt.date(2025, 1, 31)

pytestmark = pytest.mark.slow


def _rows(path: Path) -> list[tuple[str, str, dict]]:
    """(sheet, key, record) of every suspect row of a workbook."""
    wb = openpyxl.load_workbook(path, read_only=True)
    found = []
    for ws in wb.worksheets[1:-1]:
        rows = list(ws.iter_rows(values_only=True))
        for row in rows[1:]:
            record = dict(zip(rows[0], row))
            found.append((ws.title, record["疑点编号"], record))
    return found


def _fill(path: Path, values: dict[str, dict], extra: list[dict] = ()) -> None:
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets[1:-1]:
        header = [c.value for c in ws[1]]
        for row in ws.iter_rows(min_row=2):
            for name, value in values.get(row[header.index("疑点编号")].value, {}).items():
                row[header.index(name)].value = value
    first = wb.worksheets[1]
    header = [c.value for c in first[1]]
    for record in extra:
        first.append([record.get(h) for h in header])
    wb.save(path)


def _overview_notebook_plots_progress(output: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("FRAUDWATCH_OUTPUT", str(output))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    nb = nbformat.read(notebooks / "run_overview.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(notebooks)}}).execute()
    cell = next(c for c in nb.cells if c.cell_type == "code" and "progress(store)" in c.source)
    assert not [o for o in cell.outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in cell.outputs), "no progress plot"


def test_the_auditors_loop_on_sample_data(tmp_path, monkeypatch):
    if not SAMPLE.exists():
        pytest.skip("sample_data/ is missing (make sample)")
    monkeypatch.delenv("FRAUDWATCH_CASE_STORE", raising=False)
    output = tmp_path / "out"
    first = run_pipeline(RunConfig(input=SAMPLE, output=output, as_of=AS_OF))
    with open_store(output) as store:
        sent = export_by_region(output, tmp_path / "sent", store, due_days=30, today=AS_OF)
    by_size = sorted(sent.workbooks, key=lambda w: (-w.suspects, w.region_code))
    a, b = by_size[0], by_size[1]
    assert a.suspects >= 2 and b.suspects >= 2 and a.region_code != b.region_code
    a_rows, b_rows = _rows(a.file), _rows(b.file)
    assert all(r["地区"] == a.region_code for _, _, r in a_rows)
    # county A confirms everything and recovers part of it
    monkeypatch.setenv("FRAUDWATCH_USER", f"{a.region_code}审计")
    _fill(a.file, {key: {"处置结果": "确认违规", "追回金额(元)": 100, "复核人": "甲"} for _, key, _ in a_rows})
    # county B closes its first suspect as 无问题 and tries to close one of county A's too
    monkeypatch.setenv("FRAUDWATCH_USER", f"{b.region_code}审计")
    b_key = b_rows[0][1]
    _fill(b.file, {b_key: {"处置结果": "无问题", "复核人": "乙"}},
          extra=[{"疑点编号": a_rows[0][1], "处置结果": "无问题", "复核人": "乙"}])
    with open_store(output) as store:
        with pytest.raises(OutcomeError, match=f"belongs to region {a.region_code}"):
            outcomes.import_outcomes(store, b.file, output, today=AS_OF)
        assert store.history().num_rows == 0
        wb = openpyxl.load_workbook(b.file)
        wb.worksheets[1].delete_rows(wb.worksheets[1].max_row)
        wb.save(b.file)
        assert outcomes.import_outcomes(store, b.file, output, today=AS_OF).recorded == 1
        monkeypatch.setenv("FRAUDWATCH_USER", f"{a.region_code}审计")
        assert outcomes.import_outcomes(store, a.file, output, today=AS_OF).recorded == a.suspects
        progress = {r["region_code"]: r for r in ledger.progress(store, AS_OF + dt.timedelta(days=31)).iter_rows(named=True)}
        report = ledger.outcome_report(store, output)
        before = store.current_outcomes().sort_by([("rule_id", "ascending"), ("subject_id", "ascending")])
        scopes = {(r["scope"], r["recorded_by"]) for r in store.history().to_pylist()}
    assert progress[a.region_code]["answered"] == a.suspects and progress[a.region_code]["overdue"] == 0
    assert progress[a.region_code]["confirmed"] == a.suspects
    assert progress[b.region_code]["answered"] == 1 and progress[b.region_code]["overdue"] == b.suspects - 1
    others = [r for code, r in progress.items() if code not in (a.region_code, b.region_code)]
    assert others and all(r["overdue"] == r["sent"] for r in others)
    assert int(report["confirmed_fraud"].sum()) == a.suspects and int(report["no_issue"].sum()) == 1
    _overview_notebook_plots_progress(output, monkeypatch)
    assert float(report["recovered"].sum()) == 100 * a.suspects
    assert scopes == {(a.region_code, f"{a.region_code}审计"), (b.region_code, f"{b.region_code}审计")}
    # lose everything but the case store (warehouse, staging, runs, whatever holds the analytic data) and run again
    for path in output.iterdir():
        if path.name != "cases.sqlite":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    second = run_pipeline(RunConfig(input=SAMPLE, output=output, as_of=AS_OF))
    with open_store(output) as store:
        after = store.current_outcomes().sort_by([("rule_id", "ascending"), ("subject_id", "ascending")])
    assert after.equals(before)
    assert second.held_back == 1  # the 无问题 suspect is not listed again
    assert sum(second.hits_per_rule.values()) == sum(first.hits_per_rule.values()) - 1
