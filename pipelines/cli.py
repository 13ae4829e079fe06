"""The `fraudwatch` command line (typer). Commands parse arguments and call plain functions."""

from __future__ import annotations

import os
import sys
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pipelines import cli_audit, cli_screen
from pipelines.cli_output import FraudwatchGroup, console, err, fail as _fail
from pipelines.errors import FraudwatchError
from pipelines.textsafe import literal

app = typer.Typer(cls=FraudwatchGroup, no_args_is_help=True, add_completion=False,
                  help="Find benefit fraud by cross-checking registries.")
rules_app = typer.Typer(no_args_is_help=True, help="List, lint and test the YAML rules.")
app.add_typer(rules_app, name="rules")


class Format(str, Enum):
    csv = "csv"
    parquet = "parquet"


def _parse_params(items: list[str]) -> dict[str, dict[str, str]]:
    params: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        rule, dot, name = key.partition(".")
        if not sep or not dot or not rule or not name:
            raise typer.BadParameter(f"{item!r}: expected RULE_ID.PARAM=VALUE, e.g. refund_retained.deadline_days=90")
        params.setdefault(rule, {})[name] = value
    return params


@app.command()
def run(
    input: Path = typer.Option(..., "--input", "-i", help="Landing folder with the extracts."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder (warehouse, runs/, latest)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Reference date YYYY-MM-DD (default: today)."),
    rules: list[str] = typer.Option([], "--rules", help="Only these rule ids (repeatable)."),
    category: list[str] = typer.Option([], "--category", help="Only rules of these categories (repeatable)."),
    param: list[str] = typer.Option([], "--param", help="Override a rule parameter: RULE_ID.PARAM=VALUE."),
    memory_limit: Optional[str] = typer.Option(None, help="DuckDB memory limit, e.g. 16GB."),
    limit: list[str] = typer.Option([], "--limit", help="Override a resource limit: NAME=VALUE, e.g. "
                                    "rule_time_limit_seconds=120 (names and defaults: pipelines/limits.py)."),
    prefect: bool = typer.Option(True, "--prefect/--no-prefect", help="Run as a Prefect flow (temporary local server) or as plain functions."),
    job: Optional[str] = typer.Option(None, "--job", help="Job name; each job keeps its own run history and latest (default: full-audit when every rule runs, else adhoc)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="If another run holds the output folder: wait for it, or fail at once."),
    wait_timeout: float = typer.Option(1800.0, "--wait-timeout", help="Seconds to wait for another run on the same output folder."),
    engine: str = typer.Option("duckdb", "--engine", help="Where linking and the rules run: duckdb, or spark (needs pyspark, Java 17)."),
    spark_master: str = typer.Option("local[2]", "--spark-master", help="With --engine spark: local[N] or spark://host:port."),
) -> None:
    """Run the audit: ingest → validate → load → detect → publish."""
    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"--engine {engine!r}: expected duckdb or spark")
    try:
        reference = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise typer.BadParameter(f"--as-of {as_of!r}: expected YYYY-MM-DD") from None
    params = _parse_params(param)
    timeout = wait_timeout if wait else 0.0
    from pipelines.jobs import default_job
    from pipelines.pipeline import RunConfig
    from pipelines.runcheck import check_request
    from pipelines.runlock import run_lock

    from pipelines.limits import DEFAULT as DEFAULT_LIMITS, parse_cli

    limit_overrides = parse_cli(limit)
    config = RunConfig(input=input, output=output, as_of=reference, rule_ids=tuple(rules), categories=tuple(category),
                       parameters=params, memory_limit=memory_limit, job=job or default_job(rules, category),
                       wait_timeout=timeout,
                       limits=DEFAULT_LIMITS.with_overrides(limit_overrides),  # a bad limit fails here, before any work
                       engine=engine, spark_master=spark_master)
    check_request(config)  # every mistake refused before the lock, Prefect or any data is touched

    def waiting(holder) -> None:
        who = holder.describe() if holder else "another run"
        err.print(f"waiting up to {timeout:g} s for the run lock of {output}: held by {who}", highlight=False)

    with run_lock(output, config.job, timeout, waiting):
        _run(config, prefect, limit_overrides)


def _run(config, prefect: bool, limit_overrides: dict[str, str]) -> None:
    """The run itself, once the run lock is held (the flow or the stage functions take it again, re-entrantly)."""
    if prefect:
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the temporary server
        err.print("starting Prefect's temporary local server (10–30 s) …", highlight=False)
        from pipelines.flows import audit_flow

        state = audit_flow(input=str(config.input), output=str(config.output), as_of=config.as_of,
                           rules=list(config.rule_ids), categories=list(config.categories),
                           parameters=config.parameters, memory_limit=config.memory_limit, job=config.job,
                           wait_timeout=config.wait_timeout,
                           limits=limit_overrides, engine=config.engine,
                           spark_master=config.spark_master, return_state=True)
        if not state.is_completed():
            state.result()  # re-raises the flow's error
        from pipelines.publish import resolve_run
        _print_run(resolve_run(config.output, config.job))
    else:
        from pipelines.stages import run_pipeline

        with console.status("starting") as status:
            summary = run_pipeline(config, progress=lambda stage: status.update(f"{stage} …"),
                                   report=lambda line: console.print(line, highlight=False, markup=False))
        _print_run(summary.run_dir)


def _print_run(run_dir: Path) -> None:
    from pipelines import validation_site
    from pipelines.report import format_yuan, headline, load_report

    report = load_report(run_dir)
    job = f"  job {report.job}" if report.job else ""
    table = Table(title=f"run {report.run_id}{job}  (as of {report.as_of})")
    widest = max([len(format_yuan(r.amount)) for r in report.rules] + [len(format_yuan(report.total_amount))])
    for col in ("rule", "severity", "hits", "new", "recurring", "held back", "amount at risk (元)", "status"):
        # amounts never shrink into "78,973.…": on a narrow terminal the other columns wrap instead
        table.add_column(col, justify="left" if col in ("rule", "severity", "status") else "right", overflow="fold",
                         min_width=widest if col.startswith("amount") else None)
    for r in report.rules:
        table.add_row(r.rule_id, r.severity, f"{r.hits:,}", f"{r.new:,}", f"{r.recurring:,}", str(r.held_back or ""),
                      format_yuan(r.amount), r.status)
    table.add_section()
    table.add_row("total", "", f"{report.total_hits:,}", f"{report.total_new:,}", f"{report.total_recurring:,}", "",
                  format_yuan(report.total_amount), "")
    console.print(table)
    console.print(headline(report), highlight=False, markup=False, soft_wrap=True)
    if report.ge_unsuccessful:
        console.print("great-expectations suite not successful (ge_success: false) for: "
                      + ", ".join(report.ge_unsuccessful), style="yellow", highlight=False, markup=False, soft_wrap=True)
    for warning in report.warnings:
        console.print(literal(f"validation warning: {warning}", "yellow"), highlight=False, soft_wrap=True)
    output = report.output
    console.print(f"views (analysts):   {run_dir / 'views.sql'}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"suspects:           {run_dir / 'suspects.parquet'}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"manifest:           {run_dir / 'manifest.json'}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"validation report:  {validation_site.run_page(output, report.run_id)}  (every run: "
                  f"{validation_site.site_index(output)})", highlight=False, markup=False, soft_wrap=True)
    console.print(f"quarantine:         {run_dir / 'quarantine'}  ({sum(report.quarantined_per_extract.values()):,} rows)",
                  highlight=False, markup=False, soft_wrap=True)
    if report.job:
        console.print(f"job latest:         {output / 'jobs' / report.job / 'latest'} -> {run_dir.name}",
                      highlight=False, markup=False, soft_wrap=True)
    console.print(f"latest:             {output / 'latest'} -> {run_dir.name}", highlight=False, markup=False, soft_wrap=True)
    for note in report.notes:
        console.print(literal(f"note: {note}"), highlight=False, soft_wrap=True)  # data-derived text: no emoji, controls visible


@app.command()
def synth(
    persons: int = typer.Option(3000, help="Number of pensioners."),
    months: int = typer.Option(12, help="Number of benefit months."),
    seed: int = typer.Option(1, help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(..., "--out", help="Folder to write the extracts into."),
    format: Format = typer.Option(Format.csv, "--format", help="csv or parquet."),
    messy: bool = typer.Option(False, "--messy", help="Real-export mess: GB18030, Chinese headers, mixed formats, bad rows."),
    payroll_next: Optional[Path] = typer.Option(
        None, "--payroll-next", help="Also write the next month's payroll into this folder (outside --out), with planted "
                                     "holds, near misses and payroll_truth.parquet, for `fraudwatch screen`."),
    provinces: Optional[str] = typer.Option(
        None, "--provinces", help="A national set: these provinces (two-digit GB 2260 codes, e.g. 11,44,51), --persons "
                                  "each, as <extract>/<province>/<file>, with planted cross-province cases."),
) -> None:
    """Write synthetic extracts with planted fraud cases and their ground truth."""
    try:
        from fraudwatch_synth import generate, generate_national
    except ModuleNotFoundError as exc:  # the [synth] extra (or one of its packages) is not installed
        _fail(FraudwatchError(f"the synthetic-data generator is not installed ({exc.name} is missing)",
                              hint="pip install 'fraudwatch[synth]' (in a checkout: pip install -e '.[synth]')"))

    if provinces is not None:
        if payroll_next is not None:
            raise FraudwatchError("--payroll-next writes one province's payroll",
                                  hint="leave out --provinces or --payroll-next")
        with console.status(f"generating {persons} persons per province × {months} months"):
            summary = generate_national(provinces, persons=persons, months=months, seed=seed, out=out,
                                        fmt=format.value, messy=messy)
        console.print(summary)
        return
    with console.status(f"generating {persons} persons × {months} months"):
        summary = generate(persons=persons, months=months, seed=seed, out=out, fmt=format.value, messy=messy,
                           payroll_next=payroll_next)
    console.print(summary)


@rules_app.command("list")
def rules_list(rules_dir: Optional[Path] = typer.Option(None, help="Rules folder (default: rules/).")) -> None:
    """Every rule with its category, severity, status and the extracts it needs."""
    from pipelines.rules.loader import load_rules

    rules = load_rules(rules_dir) if rules_dir else load_rules()
    table = Table()
    for col in ("id", "v", "category", "severity", "status", "requires", "title"):
        table.add_column(col)
    for r in rules:
        table.add_row(r.id, str(r.version), r.category, r.severity, r.status, ", ".join(r.requires), r.title)
    console.print(table)


@rules_app.command("lint")
def rules_lint(rules_dir: Optional[Path] = typer.Option(None, help="Rules folder (default: rules/).")) -> None:
    """Parse every rule and check its SQL without running it."""
    from pipelines.rules.engine import lint_rules
    from pipelines.rules.loader import load_rules

    rules = load_rules(rules_dir, check_sql=False) if rules_dir else load_rules(check_sql=False)
    problems = lint_rules(rules)
    for problem in problems:
        err.print(literal("✗ ", "red") + literal(problem), highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]✓[/] {len(rules)} rules OK")


@rules_app.command("test")
def rules_test(
    rule_id: Optional[str] = typer.Argument(None, help="Only this rule."),
    rules_dir: Optional[Path] = typer.Option(None, help="Rules folder (default: rules/)."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb, or spark (local mode; needs pyspark and Java 17)."),
    spark_master: str = typer.Option("local[2]", "--spark-master", help="Spark master URL with --engine spark."),
) -> None:
    """Run each rule's embedded test cases against a scratch database."""
    from pipelines.rules.casetest import run_rule_cases
    from pipelines.rules.loader import load_rules

    rules = load_rules(rules_dir) if rules_dir else load_rules()
    if rule_id:
        rules = [r for r in rules if r.id == rule_id]
        if not rules:
            err.print(f"error: no rule with id {rule_id!r}; `fraudwatch rules list` shows the ids")
            raise typer.Exit(2)
    factory, close = _case_engines(engine, spark_master)
    failed = 0
    try:
        for rule in rules:
            for result in run_rule_cases(rule, factory):
                mark = "[green]✓[/]" if result.passed else "[red]✗[/]"
                console.print(f"{mark} {rule.id} :: {result.case}", highlight=False)
                for problem in result.problems:
                    console.print(literal(f"    {problem}"), highlight=False)
                failed += not result.passed
    finally:
        close()
    if failed:
        err.print(f"{failed} case(s) failed")
        raise typer.Exit(1)


@app.command()
def doctor(
    output: Optional[Path] = typer.Option(None, "--output", "-o", envvar="FRAUDWATCH_OUTPUT",
                                          help="Output folder to check (default: $FRAUDWATCH_OUTPUT)."),
    timeout: float = typer.Option(5.0, help="Seconds to wait for the Prefect API."),
) -> None:
    """Can this installation do its job? Versions, output folder, run lock, jobs, Prefect. Exit 1 if not."""
    from pipelines import doctor as checks

    findings = checks.diagnose(output, timeout=timeout)
    marks = {"ok": "[green]ok   [/]", "info": "[dim]info [/]", "warn": "[yellow]warn [/]", "error": "[bold red]ERROR[/]"}
    for finding in findings:
        console.print(marks[finding.level] + f" {finding.topic:<9} ", end="")
        console.print(finding.message, markup=False, highlight=False, soft_wrap=True)
    code = checks.exit_code(findings)
    errors = sum(f.level == "error" for f in findings)
    console.print(f"{errors} problem(s) found" if code else "no problem found", highlight=False)
    raise typer.Exit(code)


@app.command()
def views(
    output: Path = typer.Option(Path("out"), "--output", "-o", envvar="FRAUDWATCH_OUTPUT", help="Output folder."),
    run: str = typer.Option("latest", "--run", help="latest (the full audit's newest run), a job name or a run id."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file (default: print)."),
) -> None:
    """A run's views.sql with this machine's absolute paths, for a DuckDB client started in any folder."""
    from pipelines import lake, publish

    run_dir = publish.resolve_run(output, run)
    text = f"-- {publish.describe_run(run_dir)}\n" + lake.absolute_views_sql(
        (run_dir / lake.VIEWS_FILE).read_text(encoding="utf-8"), output)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        err.print(f"wrote {out}", highlight=False, markup=False, soft_wrap=True)


lake_app = typer.Typer(help="The Parquet lake of an output folder.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")


@lake_app.command("gc")
def lake_gc(
    output: Path = typer.Option(..., "--output", "-o", envvar="FRAUDWATCH_OUTPUT", help="Output folder."),
    keep_runs: int = typer.Option(3, "--keep-runs", help="Keep the lake files of this many newest complete runs "
                                                         "(the latest run of every job is always kept)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for a running run (default) or stop at once."),
    wait_timeout: float = typer.Option(1800, "--wait-timeout", help="Seconds to wait for a running run."),
) -> None:
    """Remove lake files no kept run reads, holding the run lock (a running run is never disturbed)."""
    from pipelines import lake_gc as gc

    def waiting(holder):
        err.print(f"waiting for the run lock, held by {holder.describe() if holder else 'another run'}",
                  highlight=False, markup=False, soft_wrap=True)

    result = gc.collect(output, keep_runs, dry_run=dry_run, wait_timeout=wait_timeout if wait else 0, on_wait=waiting)
    for line in gc.describe(result):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _case_engines(engine: str, spark_master: str):
    """(factory of a fresh engine session per case, close) for ``rules test --engine``."""
    if engine == "duckdb":
        return None, lambda: None
    if engine != "spark":
        err.print(f"error: unknown engine {engine!r} (duckdb or spark)")
        raise typer.Exit(2)
    from pipelines.engine.spark_engine import SparkEngine
    from pipelines.engine.spark_session import start_session

    session = start_session(spark_master, app_name="fraudwatch-rules-test", small_data=True)
    return (lambda: SparkEngine(session=session)), session.stop


# Commands for auditors and analysts (export, outcomes, person) and `screen` live in their own modules.
cli_audit.register_commands(app)
cli_screen.register_commands(app)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
