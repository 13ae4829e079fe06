"""A county workbook printed for real: LibreOffice (headless) → PDF → PNG with pdftoppm.

A4 landscape pages, every suspect row on a page one page wide, a handful of pages for a
county's list, and the first category page rendered to an image (kept next to the test's
files; the report quotes one)."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import subprocess

import pytest
from audit_helpers import hit, publish_run

from pipelines.case_store import open_store
from pipelines.dispatch import export_by_region

pytestmark = pytest.mark.slow
RUN = "20250131T000000.000Z"


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"{' / '.join(names)} not installed (Debian packages libreoffice-calc, poppler-utils)")


def test_a_county_workbook_prints_landscape_one_page_wide(tmp_path):
    soffice, pdfinfo, pdftoppm = _tool("soffice", "libreoffice"), _tool("pdfinfo"), _tool("pdftoppm")
    evidence = ('{"death_date":"2024-09-28","death_sources":["公安"],"death_records":[{"death_date":"2024-09-28",'
                '"source":"公安","record_id":"GA20240928000001"}],"improper_months":4,"payment_total":10000.00,'
                '"payment_ids":["2024100000000843","2024110000000836","2024120000000836","2025010000000836"]}')
    rows = [hit("paid_after_death", f"4101041950010{i:04d}"[:17] + "X", f"{2500 * (i + 1)}.00", name=f"王{i}芳", region="410104",
                first="2024-10", last="2025-01", evidence=evidence,
                reason=f"王{i}芳已于2024-09-28死亡（来源：公安），死亡后仍被发放2024-10至2025-01共4个月的养老金，合计{2500 * (i + 1)}.00元，属死亡后冒领。")
            for i in range(30)]
    publish_run(tmp_path / "o", RUN, rows)
    with open_store(tmp_path / "o") as store:
        result = export_by_region(tmp_path / "o", tmp_path / "sent", store, today=dt.date(2025, 2, 1))
    book = result.workbooks[0].file
    profile = tmp_path / "lo-profile"
    done = subprocess.run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                           "--outdir", str(tmp_path / "pdf"), str(book)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HOME": str(tmp_path)})
    pdf = tmp_path / "pdf" / (book.stem + ".pdf")
    assert pdf.exists(), done.stderr + done.stdout
    info = subprocess.run([pdfinfo, str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+)", info).groups())
    assert round(width) == 842 and round(height) == 595  # A4 landscape, in points
    # summary + instructions + the 30 suspects: a few pages, not one page per column strip
    assert 3 <= pages <= 2 + math.ceil(30 / 4), info
    subprocess.run([pdftoppm, "-png", "-r", "80", "-f", "2", "-l", "2", str(pdf), str(tmp_path / "page")], check=True)
    png = next(tmp_path.glob("page*.png"))
    assert png.stat().st_size > 10_000
    keep = os.environ.get("FRAUDWATCH_KEEP_PRINT")
    if keep:
        shutil.copy(png, keep)
