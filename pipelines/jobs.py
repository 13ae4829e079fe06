"""Jobs: named, recurring kinds of run, each with its own history and latest.

A job is a name recorded with every run (manifest and completion marker). Each job has its own
``<output>/jobs/<job>/latest``; a run's ``new``/``recurring`` status compares with the previous run of the
same job, so a daily death check never makes the next monthly audit's suspects look new.
``<output>/latest`` stays the newest complete run of any job (the spec's pointer). Readers (`export`,
`outcomes`, the notebooks) default to the monthly full audit's latest run and fall back to ``latest``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

FULL_AUDIT = "full-audit"      # every rule over every extract (the monthly deployment; a plain `fraudwatch run`)
DEATH_CHECK = "death-check"    # the daily deployment: payments against the death registry
ADHOC = "adhoc"                # a run with a rule or category selection and no --job
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SCHEDULE_TIMEZONE = "Asia/Shanghai"


def default_job(rule_ids: tuple[str, ...] | list[str] = (), categories: tuple[str, ...] | list[str] = ()) -> str:
    """The job of a run started without --job: the full audit when every rule runs, else an ad-hoc run."""
    return ADHOC if (rule_ids or categories) else FULL_AUDIT


def reference_date(timezone: str = SCHEDULE_TIMEZONE, when: datetime | None = None) -> date:
    """The reference date of a run: the date, in ``timezone``, of ``when`` (a flow run's scheduled start time),
    or of now. A run scheduled for 06:00 on the 5th in Shanghai is 22:00 on the 4th in UTC: its date is the 5th."""
    moment = when or datetime.now(ZoneInfo("UTC"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(ZoneInfo(timezone)).date()
