"""CLI command ``fraudwatch screen``: the hold list before payroll.

`pipelines.cli` calls :func:`register_commands` with its app (this module never imports `pipelines.cli`)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pipelines.cli_output import console

app = typer.Typer()  # the command below; `register_commands` adds it to the main app


def register_commands(cli: typer.Typer) -> None:
    """Add `screen` to the `fraudwatch` command line."""
    cli.registered_commands.extend(app.registered_commands)


@app.command()
def screen(
    payroll: Path = typer.Option(..., "--payroll", "-p", help="The coming payroll file (columns of pension_payments: CSV, XLSX or Parquet)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder of the full audit (runs/, warehouse); the hold list goes to OUTPUT/screens/<screen_id>/."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Screening date YYYY-MM-DD (default: today)."),
    warehouse: Optional[Path] = typer.Option(None, help="Warehouse file (default: OUTPUT/warehouse.duckdb)."),
    memory_limit: Optional[str] = typer.Option(None, help="DuckDB memory limit, e.g. 16GB."),
) -> None:
    """Check a payroll before it is paid: every row that would create or extend a suspect is held (暂停发放核实名单)."""
    from pipelines.screen import ScreenConfig, screen_payroll
    from pipelines.screen.workbook import HOLD_REASON_ZH

    try:
        reference = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise typer.BadParameter(f"--as-of {as_of!r}: expected YYYY-MM-DD") from None
    with console.status(f"screening {payroll.name}"):
        result = screen_payroll(ScreenConfig(payroll=payroll, output=output, as_of=reference,
                                             warehouse=warehouse, memory_limit=memory_limit))
    print_screen(result, HOLD_REASON_ZH)


def print_screen(result, labels: dict[str, str]) -> None:
    table = Table(title=f"screen {result.screen_id}: {result.rows_held} of {result.rows_screened} rows held, "
                        f"{_money(result.amount_held)} 元")
    for col in ("hold reason", "暂停原因", "rows", "amount (元)"):
        table.add_column(col, justify="right" if col in ("rows", "amount (元)") else "left")
    for reason, v in result.per_reason.items():
        table.add_row(reason, labels.get(reason, reason), str(v["rows"]), _money(v["amount"]))
    table.add_row("total", "合计", str(result.rows_held), _money(result.amount_held), style="bold")
    console.print(table)
    console.print(f"payroll rows:       {result.rows_read} read, {result.rows_quarantined} quarantined, "
                  f"{result.rows_screened} screened")
    console.print(f"checked against:    full audit run {result.audit_run}")
    console.print(f"hold list:          {result.holds}")
    console.print(f"for the office:     {result.xlsx}")
    if result.rows_quarantined:
        console.print(f"quarantine:         {result.screen_dir / 'quarantine.parquet'}")
    for check, missing in result.skipped_checks.items():
        console.print(f"note: check {check} skipped: the audit data has no {', '.join(missing)}", highlight=False)


def _money(text: str) -> str:
    whole, _, cents = f"{text}".partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-') or 0):,}.{(cents + '00')[:2]}"
