"""Pre-payment screening (the hold list, 暂停发放核实名单): ``fraudwatch screen``.

docs/spec/suspects.md, "Pre-payment screening": a coming payroll file (the columns of
``pension_payments``) is checked against the data of the latest full audit run and against
itself; every payroll row that would create or extend a suspect if paid is listed in
``<output>/screens/<screen_id>/holds.parquet`` and ``holds.xlsx``, with ``manifest.json``.
"""

from pipelines.screen.run import ScreenConfig, ScreenResult, screen_payroll

__all__ = ["ScreenConfig", "ScreenResult", "screen_payroll"]
