"""CLI commands for auditors and analysts: export, outcomes, person.

`pipelines.cli` calls :func:`register_commands` with its app (this module never imports `pipelines.cli`).

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

from pipelines.cli_output import console, err

app = typer.Typer()  # the commands below; `register_commands` adds them to the main app
outcomes_app = typer.Typer(no_args_is_help=True, help="Record and report what suspects turned out to be (处置结果).")
app.add_typer(outcomes_app, name="outcomes")



def register_commands(cli: typer.Typer) -> None:
    """Add export, outcomes and person to the `fraudwatch` command line."""
    for command in app.registered_commands:
        cli.registered_commands.append(command)
    for group in app.registered_groups:
        cli.registered_groups.append(group)


OUTPUT_HELP = "Run output folder (runs/, latest, cases.sqlite)."
WAREHOUSE_HELP = "Ignored, kept so older scripts still run: the command reads the published run (OUTPUT/latest)."
STORE_HELP = "Case store: a SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: sqlite OUTPUT/cases.sqlite)."
STORE_ENV = "FRAUDWATCH_CASE_STORE"
RUN_HELP = ("`latest` (the monthly full audit's newest run, else the newest run), a job name "
            "(that job's newest run) or a run id.")
T = TypeVar("T")


class ExportFormat(str, Enum):
    xlsx = "xlsx"
    csv = "csv"


def _published_run(output: Path, run: str = "latest") -> Path:
    """The run a command reads (refusing an output folder that holds no complete run), said on stderr."""
    from pipelines.publish import describe_run, resolve_run

    run_dir = resolve_run(output, run)
    err.print(f"reading {describe_run(run_dir)}", highlight=False, markup=False)
    return run_dir


def _with_published(output: Path, work: Callable[[Any], T]) -> T:
    """``work(engine)`` on the published run's relations (its views.sql: readers never open a file a
    run writes), closed afterwards."""
    from pipelines.lake import open_published

    engine = open_published(output)
    try:
        return work(engine)
    finally:
        engine.close()


def _with_store(output: Path, case_store: Optional[str], work: Callable[[Any], T]) -> T:
    """``work(store)`` on the opened case store, which is closed afterwards; its notes are printed."""
    from pipelines.case_store import open_store

    with open_store(output, case_store) as store:
        for note in store.notes:
            err.print(f"note: {note}", highlight=False, soft_wrap=True)
        return work(store)


@app.command()
def export(
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    run: str = typer.Option("latest", "--run", help=RUN_HELP),
    format: ExportFormat = typer.Option(ExportFormat.xlsx, "--format", help="xlsx (summary + one sheet per category) or csv (one file + .summary.csv)."),
    out: Path = typer.Option(..., "--out", help="File to write (with --by-region: the folder for the workbooks)."),
    mask: bool = typer.Option(False, "--mask", help="Mask person IDs (first 6 + last 4) and names (surname only)."),
    by_region: bool = typer.Option(False, "--by-region", help="One workbook per region (only its suspects, with a reply deadline), recorded as sent."),
    due_days: int = typer.Option(30, "--due-days", help="With --by-region: days until the reply is due."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files (they may hold an auditor's work)."),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Export a run's suspects for auditors, with Chinese headers and empty outcome columns to fill in."""
    from pipelines.export import CATEGORY_ZH, export_suspects

    _published_run(output, run)
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    if by_region and format != ExportFormat.xlsx:
        raise typer.BadParameter("--by-region writes workbooks: use --format xlsx", param_hint="--format")

    def work(store):
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(f"writing {format.value}", total=None)
            report = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
            if by_region:
                from pipelines.dispatch import export_by_region

                return export_by_region(output, out, store, run=run, mask=mask, due_days=due_days, force=force,
                                        progress=report)
            return export_suspects(output, out, format.value, run=run, mask=mask, store=store, force=force,
                                   progress=report)

    result = _with_store(output, case_store, work)
    if by_region:
        table = Table(title=f"run {result.run_id}: {len(result.workbooks)} regional workbooks")
        for col in ("地区代码", "地区", "疑点", "答复期限", "文件"):
            table.add_column(col, justify="right" if col == "疑点" else "left")
        for w in result.workbooks:
            table.add_row(w.region_code, w.region_name, str(w.suspects), w.due_date.isoformat(), str(w.file))
        console.print(table)
        for note in result.notes:
            console.print(f"note: {note}", highlight=False)
        return
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

    _published_run(output)

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
    run: str = typer.Option("latest", "--run", help=RUN_HELP),
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Record one suspect's outcome (a new history entry; earlier ones are kept)."""
    from pipelines.outcomes import OUTCOME_LABELS, set_outcome

    _published_run(output, run)
    result = _with_store(output, case_store, lambda store: set_outcome(
        store, output, rule_id, subject_id, outcome, reviewer, recovered=recovered, note=note, review_date=date_, run=run))
    if result.recorded:
        code = next(iter(result.per_outcome))
        console.print(f"recorded {rule_id} {subject_id}: {OUTCOME_LABELS[code]} ({code})")
    else:
        console.print("unchanged: that is already the suspect's current outcome")


def _print_frame(title: str, frame, money: tuple[str, ...]) -> None:
    import polars as pl

    table = Table(title=title)
    for col in frame.columns:
        table.add_column(col, justify="left" if frame[col].dtype == pl.String else "right", overflow="fold")
    for row in frame.iter_rows(named=True):
        table.add_row(*["" if v is None else f"{v:,.2f}" if k in money else str(v) for k, v in row.items()])
    console.print(table)


def _write_csv(frame, path: Path, money: tuple[str, ...]) -> None:
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        frame.with_columns([frame[c].cast(str) for c in money if c in frame.columns]).write_csv(fh)
    console.print(f"wrote {path}")


class LedgerBy(str, Enum):
    rule = "rule"
    category = "category"


@outcomes_app.command("report")
def outcomes_report(
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    run: str = typer.Option("latest", "--run", help=RUN_HELP),
    by: LedgerBy = typer.Option(LedgerBy.rule, "--by", help="One row per rule or per category."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the report to this CSV (UTF-8 with BOM)."),
    until_age: int = typer.Option(85, "--until-age", help="Future loss: lifelong payments would have run until this age."),
    default_months: int = typer.Option(12, "--default-months", help="Future loss: months assumed when no age applies."),
    cap_months: int = typer.Option(60, "--cap-months", help="Future loss: at most this many months per case."),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """The savings ledger per rule or category: hits, answered, precision, overpayment found, future loss prevented (estimated), recovered."""
    from pipelines.ledger import FutureLoss, outcome_report

    _published_run(output, run)
    future = FutureLoss(until_age=until_age, default_months=default_months, cap_months=cap_months)
    report = _with_store(output, case_store, lambda store: outcome_report(store, output, run, by=by.value, future=future))
    money = ("amount_at_risk", "overpayment_found", "future_loss_prevented", "recovered")
    _print_frame(f"savings ledger per {by.value} (hits, open, amount at risk: this run; the rest: current outcomes of "
                 f"every suspect reviewed; future loss: estimated, monthly amount × months to age {until_age} or "
                 f"{default_months}, at most {cap_months})", report, money)
    if csv:
        _write_csv(report, csv, money)


@outcomes_app.command("progress")
def outcomes_progress(
    output: Path = typer.Option(Path("out"), "--output", "-o", help=OUTPUT_HELP),
    xlsx: Optional[Path] = typer.Option(None, "--xlsx", help="Also write the table to this workbook."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Count overdue as of this date YYYY-MM-DD (default: today)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the --xlsx file if it exists."),
    case_store: Optional[str] = typer.Option(None, "--case-store", envvar=STORE_ENV, help=STORE_HELP),
) -> None:
    """Per region: suspects sent (export --by-region), answered, overdue, confirmed, recovered."""
    from datetime import date

    from pipelines.ledger import progress, write_progress_xlsx

    try:
        today = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise typer.BadParameter(f"{as_of!r}: expected YYYY-MM-DD", param_hint="--as-of") from None
    frame = _with_store(output, case_store, lambda store: progress(store, today))
    if frame.height == 0:
        console.print("nothing sent yet: `fraudwatch export --by-region --out DIR` sends each region its suspects")
        return
    _print_frame(f"progress per region as of {today.isoformat()} (answered = 确认违规/经办差错/无问题; "
                 "confirmed = 确认违规 or 经办差错)", frame, ("recovered", "amount_sent"))
    if xlsx:
        console.print(f"wrote {write_progress_xlsx(frame, xlsx, today, force=force)}")


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

    _published_run(output)
    facts = _with_store(output, case_store, lambda store: _with_published(
        output, lambda engine: person_facts(engine, output, person_id, store=store)))
    render_person(facts, console)
