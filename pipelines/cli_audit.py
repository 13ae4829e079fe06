"""CLI commands for auditors and analysts: export, outcomes, person. Registered on `pipelines.cli.app`.

Commands parse arguments and call the plain functions of :mod:`pipelines.export`,
:mod:`pipelines.outcomes`, :mod:`pipelines.ledger`, :mod:`pipelines.case_store` and
:mod:`pipelines.person_view`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pipelines.cli import _fail, app, console, err
from pipelines.errors import FraudwatchError

outcomes_app = typer.Typer(no_args_is_help=True, help="Record and report what suspects turned out to be (处置结果).")
app.add_typer(outcomes_app, name="outcomes")

OUTPUT_HELP = "Run output folder (runs/, latest, cases.sqlite)."
WAREHOUSE_HELP = "Warehouse file (default: OUTPUT/warehouse.duckdb)."
STORE_HELP = "Case store: a SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: sqlite OUTPUT/cases.sqlite)."
STORE_ENV = "FRAUDWATCH_CASE_STORE"
T = TypeVar("T")


class ExportFormat(str, Enum):
    xlsx = "xlsx"
    csv = "csv"


def _warehouse(output: Path, warehouse: Optional[Path]) -> Path:
    return warehouse or output / "warehouse.duckdb"


def _open(path: Path, write: bool):
    """The warehouse read-only (an empty in-memory DB if absent); ``write`` is kept for callers."""
    import duckdb

    from pipelines import warehouse as wh
    from pipelines.errors import RunError

    if write:
        return wh.connect(path)
    if not path.exists():
        return duckdb.connect()
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(f"cannot open the warehouse read-only: {first}", file=path,
                       hint="if a run is writing it, try again when it has finished; if the file is damaged, delete it "
                            "and run `fraudwatch run` again (it is rebuilt from the landing folder; auditors' outcomes "
                            "are kept in the case store, not in the warehouse)") from None


def _with_warehouse(output: Path, warehouse: Optional[Path], write: bool, work: Callable[[Any], T]) -> T:
    """``work(con)`` on the opened warehouse, which is closed afterwards; an error ends the command."""
    try:
        con = _open(_warehouse(output, warehouse), write=write)
        try:
            return work(con)
        finally:
            con.close()
    except FraudwatchError as exc:
        _fail(exc)


def _with_store(output: Path, case_store: Optional[str], work: Callable[[Any], T]) -> T:
    """``work(store)`` on the opened case store, which is closed afterwards; its notes are printed; an error ends the command."""
    from pipelines.case_store import open_store

    try:
        with open_store(output, case_store) as store:
            for note in store.notes:
                err.print(f"note: {note}", highlight=False, soft_wrap=True)
            return work(store)
    except FraudwatchError as exc:
        _fail(exc)


@app.command()
def export(
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    run: str = typer.Option("latest", "--run", help="`latest` or a run id."),
    format: ExportFormat = typer.Option(..., "--format", help="xlsx (summary + one sheet per category) or csv (one file + .summary.csv)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    mask: bool = typer.Option(False, "--mask", help="Mask person IDs (first 6 + last 4) and names (surname only)."),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Export a run's suspects for auditors, with Chinese headers and empty outcome columns to fill in."""
    from pipelines.export import CATEGORY_ZH, export_suspects

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]

    def work(store):
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(f"writing {format.value}", total=None)
            return export_suspects(output, out, format.value, run=run, mask=mask, store=store,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))

    result = _with_store(output, case_store, work)
    table = Table(title=f"run {result.run_id}: {result.rows} suspects" + (" (masked)" if result.masked else ""))
    table.add_column("类别"), table.add_column("category"), table.add_column("suspects", justify="right")
    for category, n in result.per_category.items():
        table.add_row(CATEGORY_ZH.get(category, category), category, str(n))
    console.print(table)
    for path in result.files:
        console.print(f"wrote {path}")
    if result.prefilled_outcomes:
        console.print(f"{result.prefilled_outcomes} suspects pre-filled with their current outcome")
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


@outcomes_app.command("import")
def outcomes_import(
    file: Path = typer.Argument(..., help="An export (.xlsx or .csv) with 处置结果 filled in."),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Import outcomes from a filled-in export: all rows or none (every bad row is listed)."""
    from pipelines.outcomes import OUTCOME_LABELS, import_outcomes

    def work(store):
        with console.status(f"checking {file}"):
            return import_outcomes(store, file, output)

    result = _with_store(output, case_store, work)
    scope = "the whole province" if result.scope == "*" else f"region {result.scope}"
    console.print(f"{file}: {result.rows_with_outcome} rows with an outcome; recorded {result.recorded}, "
                  f"unchanged {result.unchanged} (scope: {scope}; recorded by {result.recorded_by})")
    for code, n in result.per_outcome.items():
        console.print(f"  {OUTCOME_LABELS[code]} ({code}): {n}")


@outcomes_app.command("set")
def outcomes_set(
    rule_id: str = typer.Argument(..., help="Rule id of the suspect."),
    subject_id: str = typer.Argument(..., help="Person ID (15 or 18 digits) or USCC of the suspect."),
    outcome: str = typer.Option(..., "--outcome", help="确认违规/经办差错/无问题/核查中 or confirmed_fraud/admin_error/no_issue/under_review."),
    reviewer: str = typer.Option(..., "--reviewer", help="Who reviewed it (复核人)."),
    recovered: Optional[str] = typer.Option(None, "--recovered", help="Recovered amount in 元, e.g. 12000.50."),
    note: Optional[str] = typer.Option(None, "--note", help="处置说明."),
    date_: Optional[str] = typer.Option(None, "--date", help="Review date YYYY-MM-DD (default: today)."),
    run: str = typer.Option("latest", "--run", help="The run the suspect is in: `latest` or a run id."),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Record one suspect's outcome (a new history entry; earlier ones are kept)."""
    from pipelines.outcomes import OUTCOME_LABELS, set_outcome

    result = _with_store(output, case_store, lambda store: set_outcome(
        store, output, rule_id, subject_id, outcome, reviewer, recovered=recovered, note=note, review_date=date_, run=run))
    if result.recorded:
        code = next(iter(result.per_outcome))
        console.print(f"recorded {rule_id} {subject_id}: {OUTCOME_LABELS[code]} ({code})")
    else:
        console.print("unchanged: that is already the suspect's current outcome")


@outcomes_app.command("report")
def outcomes_report(
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    run: str = typer.Option("latest", "--run", help="Hits of this run: `latest` or a run id."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the report to this CSV (UTF-8 with BOM)."),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Per rule: hits, open, reviewed, confirmed rate, amount at risk and recovered — which rules earn their keep."""
    from pipelines.ledger import outcome_report

    report = _with_store(output, case_store, lambda store: outcome_report(store, output, run))
    money = ("amount_at_risk", "recovered")
    table = Table(title="outcomes per rule (hits, open, amount at risk: this run; the rest: all outcomes recorded)")
    for col in report.columns:
        table.add_column(col, justify="left" if col == "rule_id" else "right")
    for row in report.iter_rows(named=True):
        table.add_row(*["" if v is None else f"{v:,.2f}" if k in money else str(v) for k, v in row.items()])
    console.print(table)
    if csv:
        with open(csv, "wb") as fh:
            fh.write(b"\xef\xbb\xbf")
            report.with_columns([report[c].cast(str) for c in money]).write_csv(fh)
        console.print(f"wrote {csv}")


@outcomes_app.command("backup")
def outcomes_backup(
    file: Path = typer.Argument(..., help="Backup file to write (a SQLite database)."),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
    force: bool = typer.Option(False, "--force", help="Overwrite FILE if it exists."),
) -> None:
    """Copy the whole case store (outcomes, dispatches) into one portable file."""
    from pipelines.case_store import backup

    counts = _with_store(output, case_store, lambda store: backup(store, file, force=force))
    console.print(f"wrote {file}: {counts['outcomes']} outcome entries, {counts['dispatches']} dispatches, "
                  f"{counts['dispatch_items']} dispatched suspects")


@outcomes_app.command("restore")
def outcomes_restore(
    file: Path = typer.Argument(..., help="A file written by `fraudwatch outcomes backup`."),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
    replace: bool = typer.Option(False, "--replace", help="Replace the contents of a store that is not empty."),
) -> None:
    """Load a backup into the case store (an empty one, unless --replace)."""
    from pipelines.case_store import restore

    counts = _with_store(output, case_store, lambda store: restore(store, file, replace=replace))
    console.print(f"restored {counts['outcomes']} outcome entries, {counts['dispatches']} dispatches, "
                  f"{counts['dispatch_items']} dispatched suspects from {file}")


@app.command()
def person(
    person_id: str = typer.Argument(..., help="Citizen ID (15 or 18 digits)."),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    warehouse: Optional[Path] = typer.Option(None, help=WAREHOUSE_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """One person: linked identities, payments by month and region, death, prison, household, hits, outcomes."""
    from pipelines.person_view import person_facts, render_person

    facts = _with_store(output, case_store, lambda store: _with_warehouse(
        output, warehouse, False, lambda con: person_facts(con, output, person_id, store=store)))
    render_person(facts, console)
