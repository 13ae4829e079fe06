"""Run summaries (CLI and Prefect markdown): validation warnings, new vs recurring, as-of, exact amounts."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pipelines import stages
from pipelines.cli import app
from pipelines.pipeline import RunConfig
from pipelines.publish import resolve_run
from pipelines.report import format_yuan, load_report, summary_markdown, summary_rows
from fraudwatch_synth import generate

pytestmark = pytest.mark.slow

AS_OF = date(2026, 1, 31)
IMPOSSIBLE = 3  # death dates in 2099: after today, so the full-data check and the GE suite both warn


def test_amounts_are_exact_with_thousands_separators():
    assert format_yuan(Decimal("12345678901234.56")) == "12,345,678,901,234.56"  # a float would round this
    assert format_yuan("1234.5") == "1,234.50"
    assert format_yuan("0") == "0.00"
    assert format_yuan(None) == "" and format_yuan("") == ""


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same landing folder run twice: first via the stage functions, then via the CLI."""
    root = tmp_path_factory.mktemp("report")
    landing, output = root / "in", root / "out"
    generate(persons=300, months=6, seed=3, out=landing)
    deaths = pl.read_csv(landing / "deaths.csv", infer_schema=False)
    deaths = deaths.with_columns(
        pl.when(pl.int_range(pl.len()) < IMPOSSIBLE).then(pl.lit("2099-01-01")).otherwise(pl.col("death_date"))
        .alias("death_date"))
    deaths.write_csv(landing / "deaths.csv")
    first = stages.run_pipeline(RunConfig(input=landing, output=output, as_of=AS_OF))
    cli = CliRunner().invoke(app, ["run", "--input", str(landing), "--output", str(output),
                                   "--as-of", AS_OF.isoformat(), "--no-prefect"], terminal_width=200)
    assert cli.exit_code == 0, cli.output
    return first, resolve_run(output, "latest"), cli.output


def test_second_run_counts_every_suspect_recurring(two_runs):
    first, second_dir, _ = two_runs
    one, two = load_report(first.run_dir), load_report(second_dir)
    assert one.total_new == one.total_hits > 0 and one.total_recurring == 0
    assert two.total_recurring == two.total_hits == one.total_hits and two.total_new == 0
    assert two.as_of == "2026-01-31"
    assert two.total_amount == sum(Decimal(a) for a in first.amount_per_rule.values() if a)


def test_validation_warnings_are_reported_without_data_values(two_runs):
    first, _, _ = two_runs
    report = load_report(first.run_dir)
    assert f"deaths: future_dates [death_date]: {IMPOSSIBLE} row(s) in deaths.csv" in report.warnings
    assert any(w.startswith("deaths: great-expectations (sample) expect_column_values_to_be_between [death_date]")
               for w in report.warnings)
    assert report.ge_unsuccessful == ["deaths"]
    assert not any("2099" in w for w in report.warnings)  # counts, not the values


def test_cli_summary_shows_warnings_new_recurring_as_of_and_amounts(two_runs):
    first, second_dir, output = two_runs
    report = load_report(second_dir)
    assert "(as of 2026-01-31)" in output
    assert f"{report.total_hits} suspects (0 new, {report.total_hits} recurring)" in output
    assert format_yuan(report.total_amount) in output and re.search(r"\d,\d{3}\.\d\d", output)
    assert "ge_success: false" in output and "deaths" in output
    assert f"validation warning: deaths: future_dates [death_date]: {IMPOSSIBLE} row(s)" in output


def test_prefect_summary_markdown_and_table(two_runs):
    _, second_dir, _ = two_runs
    report = load_report(second_dir)
    md = summary_markdown(report)
    assert "as of: 2026-01-31" in md
    assert f"| **total** | | {report.total_hits} | 0 | {report.total_hits} |" in md
    assert "`ge_success: false`" in md and "future_dates [death_date]" in md
    rule = next(r for r in report.rules if r.amount and r.amount >= 1000)
    assert f"| {format_yuan(rule.amount)} |" in md and "," in format_yuan(rule.amount)
    rows = summary_rows(report)
    assert {r["rule_id"] for r in rows} == {r.rule_id for r in report.rules}
    assert all(r["recurring"] == r["hits"] for r in rows)


def test_the_validation_site_lists_both_runs(two_runs):
    from pipelines import validation_site

    first, second_dir, output = two_runs
    out = first.run_dir.parent.parent
    assert [r.run_id for r in validation_site.collect_runs(out)] == [second_dir.name, first.run_id]
    assert first.validation_report == validation_site.run_page(out, first.run_id) and first.validation_report.is_file()
    assert f"validation report:  {validation_site.run_page(out, second_dir.name)}" in output
    index = validation_site.site_index(out).read_text(encoding="utf-8")
    assert first.run_id in index and second_dir.name in index
