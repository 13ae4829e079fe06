"""Notifications: a failed run, and new high-severity suspects, through apprise.

Configured in one place, the output folder's ``fraudwatch.toml``::

    [alerts]
    urls = ["dingtalk://TOKEN/", "wecombot://BOTKEY", "mailtos://user:pass@mail.example.gov.cn?to=team@example.gov.cn",
            "json://alerts.example.gov.cn/fraudwatch"]
    min_severity = "high"      # alert on new suspects of this severity or higher (high | medium | low)

Messages carry counts, amounts, the run id, the job and paths -- never a person ID, name or account,
and never an error's text (it can quote data): a failed run's alert names the stage, the error kind,
the file it concerns and where the evidence is. Sending never fails a run: every problem (bad
configuration, unreachable service) is logged as a warning and the run goes on.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pipelines import validation_site
from pipelines.errors import ConfigError, FraudwatchError

CONFIG_FILE = "fraudwatch.toml"
SEVERITIES = ("high", "medium", "low")  # most severe first
log = logging.getLogger("fraudwatch.alerts")


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go (apprise URLs) and from which severity new suspects are alerted."""

    urls: tuple[str, ...] = ()
    min_severity: str = "high"
    source: Path | None = None

    @property
    def severities(self) -> tuple[str, ...]:
        """The severities alerted on: ``min_severity`` and everything more severe."""
        return SEVERITIES[: SEVERITIES.index(self.min_severity) + 1]


@dataclass(frozen=True)
class Alert:
    """One notification: a title and a plain-text body, and apprise's type (failure / warning)."""

    title: str
    body: str
    kind: str  # apprise NotifyType value: 'failure' | 'warning' | 'info'


def load_config(output: Path) -> AlertConfig:
    """The ``[alerts]`` section of ``<output>/fraudwatch.toml`` (no file or no section: alerts off).

    Raises :class:`ConfigError` naming the file for malformed TOML, unknown keys or bad values."""
    path = Path(output) / CONFIG_FILE
    if not path.is_file():
        return AlertConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None
    section = data.get("alerts", {})
    if not isinstance(section, dict):
        raise ConfigError("[alerts] must be a table", file=path)
    unknown = set(section) - {"urls", "min_severity"}
    if unknown:
        raise ConfigError(f"unknown key(s) in [alerts]: {', '.join(sorted(unknown))}", file=path,
                          hint="[alerts] takes urls (a list of apprise URLs) and min_severity")
    urls = section.get("urls", [])
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls):
        raise ConfigError("[alerts] urls must be a list of apprise URLs (strings)", file=path)
    severity = section.get("min_severity", "high")
    if severity not in SEVERITIES:
        raise ConfigError(f"[alerts] min_severity {severity!r} is not one of {', '.join(SEVERITIES)}", file=path)
    return AlertConfig(tuple(u.strip() for u in urls), severity, path)


def check_config(config: AlertConfig) -> list[str]:
    """Problems apprise finds in the configured URLs (unknown scheme, missing token), without sending.

    The URLs themselves are not repeated (they hold tokens): each problem names the URL's position."""
    import apprise

    problems = []
    for i, url in enumerate(config.urls, 1):
        if apprise.Apprise.instantiate(url) is None:
            problems.append(f"alert URL #{i} ({url.split('://', 1)[0]}://…) is not a valid apprise URL")
    return problems


def send(config: AlertConfig, alert: Alert) -> bool:
    """Send ``alert`` to every configured URL. Returns True when all accepted it; never raises."""
    if not config.urls:
        return True
    try:
        import apprise

        client = apprise.Apprise()
        problems = check_config(config)
        for problem in problems:
            log.warning("alerts (%s): %s", config.source, problem)
        for url in config.urls:
            client.add(url)
        ok = bool(client.notify(body=alert.body, title=alert.title, notify_type=alert.kind)) and not problems
    except Exception as exc:  # an alert must never fail the run
        log.warning("alerts: sending %r failed (%s)", alert.title, type(exc).__name__)
        return False
    if not ok:
        log.warning("alerts: %r was not accepted by every configured service (see %s)", alert.title, config.source)
    return ok


# --------------------------------------------------------------------------- the two alerts


def _amount_text(amount) -> str:
    """'1,234.50 元 at risk', or for a rule without amounts (a risk indicator such as
    certified_after_death) 'no amount at risk (risk indicator)'."""
    from pipelines.report import format_yuan

    text = format_yuan(amount)
    return f"{text} 元 at risk" if text else "no amount at risk (risk indicator)"


def new_suspects_alert(report, config: AlertConfig) -> Alert | None:
    """The alert for a finished run's new suspects at or above ``config.min_severity`` (None if there are none)."""
    from pipelines.report import format_yuan

    rules = [r for r in report.ran if r.new and r.severity in config.severities]
    if not rules:
        return None
    count = sum(r.new for r in rules)
    amount = sum((r.new_amount or Decimal(0) for r in rules), Decimal(0))
    level = config.min_severity if config.min_severity == "high" else f"{config.min_severity}-or-higher"
    job = f" ({report.job})" if report.job else ""
    lines = [f"run {report.run_id}{job}, as of {report.as_of}: {count:,} new {level}-severity suspect(s), "
             f"{format_yuan(amount)} 元 at risk.", ""]
    lines += [f"- {r.rule_id} ({r.severity}): {r.new:,} new, {_amount_text(r.new_amount)}" for r in rules]
    lines += ["", f"All suspects: {report.total_hits:,} ({report.total_new:,} new, {report.total_recurring:,} recurring), "
              f"{format_yuan(report.total_amount)} 元 at risk."]
    if report.warnings:
        lines.append(f"Validation warnings: {len(report.warnings)}.")
    output = Path(report.output).resolve()  # absolute: the message is read on another machine
    lines += [f"Suspects: {Path(report.run_dir).resolve() / 'suspects.parquet'}",
              f"Validation report: {validation_site.run_page(output, report.run_id)}",
              f"Output folder: {output}"]
    return Alert(f"fraudwatch: {count:,} new {level}-severity suspect(s) in run {report.run_id}{job}",
                 "\n".join(lines), "warning")


def failure_alert(run_id: str, output: Path, stage: str | None, exc: BaseException, job: str | None = None,
                  evidence: Path | None = None) -> Alert:
    """The alert for a failed run: stage, error kind and the file it concerns -- never the error's text."""
    job_text = f" ({job})" if job else ""
    output = Path(output).resolve()
    lines = [f"run {run_id}{job_text} failed" + (f" in stage {stage}" if stage else "") + f": {type(exc).__name__}."]
    if isinstance(exc, FraudwatchError):
        if exc.file:
            lines.append(f"Concerning: {exc.file}")
        if exc.rule:
            lines.append(f"Rule: {exc.rule}")
    lines.append("latest was not moved; no suspects were published by this run.")
    if evidence is not None:
        lines.append(f"Evidence (validation results, quarantine, error): {evidence}")
    page = validation_site.run_page(output, run_id)
    if page.exists():
        lines.append(f"Validation report: {page}")
    lines.append(f"Output folder: {output}")
    return Alert(f"fraudwatch: run {run_id}{job_text} FAILED", "\n".join(lines), "failure")


def _config_or_none(output: Path) -> AlertConfig | None:
    try:
        config = load_config(output)
    except ConfigError as exc:
        log.warning("alerts are off: %s", exc)
        return None
    return config if config.urls else None


def after_run(run_dir: Path, output: Path) -> bool | None:
    """Alert on the finished run's new high-severity suspects. None: nothing to send; never raises."""
    try:
        config = _config_or_none(output)
        if config is None:
            return None
        from pipelines.report import load_report

        alert = new_suspects_alert(load_report(run_dir), config)
        return None if alert is None else send(config, alert)
    except Exception as exc:
        log.warning("alerts: could not prepare the new-suspects alert (%s)", type(exc).__name__)
        return False


def after_failure(run_id: str, output: Path, stage: str | None, exc: BaseException, job: str | None = None,
                  evidence: Path | None = None) -> bool | None:
    """Alert on a failed run. None: alerts are not configured; never raises."""
    try:
        config = _config_or_none(output)
        if config is None:
            return None
        return send(config, failure_alert(run_id, output, stage, exc, job, evidence))
    except Exception as err:
        log.warning("alerts: could not send the failure alert (%s)", type(err).__name__)
        return False


def after_failed_run(ctx, exc: BaseException) -> bool | None:
    """Alert on the failed run of ``ctx`` (a :class:`pipelines.pipeline.RunContext`), after its evidence was
    kept: the stage is the last one started, the evidence ``<output>/failed/<run_id>`` if it exists."""
    output = Path(ctx.config.output)
    stage = next(reversed(ctx.timings), None) if ctx.timings else None
    evidence = output / "failed" / ctx.run_id
    return after_failure(ctx.run_id, output, stage, exc, getattr(ctx.config, "job", None),
                         evidence if evidence.exists() else None)
