"""Tests for pipelines.validation_cache: a validation is reused on a later day only when nothing
was in the future on the day it was made (the daily death check must not re-validate a month of
unchanged payments because the date changed)."""

from __future__ import annotations

import datetime as dt

from pipelines import validation_cache
from tests.test_validate import PENSION, TODAY, failed, run, set_rows, staged_frame


def _saved(tmp_path, frame):
    v = run(tmp_path / "made", PENSION, [frame])
    validation_cache.save(tmp_path / "out", "k", tmp_path / "made" / "report", v, TODAY)
    return v


def test_clean_result_is_reused_on_later_days_not_earlier(tmp_path):
    v = _saved(tmp_path, staged_frame(PENSION, 20, "pension_payments.csv"))
    assert v.passed and not failed(v, "future_dates")
    for later in (TODAY, TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=400)):
        again = validation_cache.load(tmp_path / "out", "k", tmp_path / f"r{later}", later)
        assert again is not None and again.checks == v.checks
        assert again.report_path.exists() and again.report_path.is_relative_to(tmp_path / f"r{later}")
    assert validation_cache.load(tmp_path / "out", "k", tmp_path / "r0", TODAY - dt.timedelta(days=1)) is None


def test_result_with_future_dates_holds_only_that_day(tmp_path):
    frame = set_rows(staged_frame(PENSION, 20, "pension_payments.csv"), "pay_date", TODAY + dt.timedelta(days=3), range(2))
    v = _saved(tmp_path, frame)
    assert failed(v, "future_dates", "pay_date")  # a warning: the extract still passes
    assert validation_cache.load(tmp_path / "out", "k", tmp_path / "r1", TODAY) is not None
    # four days later those dates are no longer in the future: the verdict must be made again
    assert validation_cache.load(tmp_path / "out", "k", tmp_path / "r2", TODAY + dt.timedelta(days=4)) is None


def test_unreadable_or_old_format_cache_is_ignored(tmp_path):
    target = tmp_path / "out" / validation_cache.CACHE_DIR / "k"
    target.mkdir(parents=True)
    (target / "result.pickle").write_bytes(b"not a pickle")
    assert validation_cache.load(tmp_path / "out", "k", tmp_path / "r", TODAY) is None
    import pickle
    (target / "result.pickle").write_bytes(pickle.dumps(("result", {})))  # the two-field format of before
    assert validation_cache.load(tmp_path / "out", "k", tmp_path / "r", TODAY) is None
