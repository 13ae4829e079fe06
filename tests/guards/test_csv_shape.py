"""Hostile CSV: huge fields and lines fail fast with little memory; parse errors quote no rows."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from hostile import PAYMENTS_HEADER, assert_clean_failure, assert_no_personal_data, landing, payments_csv, run

from pipelines import limits
from pipelines.errors import ExtractError
from pipelines.guards.csv_shape import CsvShape
from pipelines.readers import hash_and_detect


def test_a_2_gib_field_fails_fast_naming_file_row_and_limit(tmp_path):
    path = tmp_path / "pension_payments.csv"
    with open(path, "wb") as fh:  # sparse: 2 GiB of NUL-free filler costs no disk
        fh.write((PAYMENTS_HEADER + "P1,11010519491231002X,\"").encode())
        fh.truncate(2 * 1024**3 + 200)
    # a quoted field that never ends, filled with zero bytes (no separators, no line breaks)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ExtractError) as info:
        hash_and_detect(path, str(path))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    text = str(info.value)
    assert "row 2: a field is longer than the limit of 1 MiB (limits.csv_max_field_bytes)" in text
    assert str(path) in text
    assert grown_mb < 500, f"checking the field grew memory by {grown_mb:.0f} MiB"


def test_a_long_unquoted_line_hits_the_line_limit(tmp_path):
    path = tmp_path / "deaths.csv"
    path.write_bytes(b"person_id,name,death_date,source\n" + b"x,y,z,w\n" * 3 + (b"a," * 200_000) + b"\n")
    with limits.using(limits.DEFAULT.with_overrides({"csv_max_line_bytes": "100KB"})):
        with pytest.raises(ExtractError, match=r"row 5: a line is longer than the limit of 97.66 KiB"):
            hash_and_detect(path, str(path))


def test_quoted_separators_and_line_breaks_count_as_one_field():
    shape = CsvShape("f.csv", limits.DEFAULT.with_overrides({"csv_max_field_bytes": 20, "csv_max_line_bytes": 60}))
    shape.feed(b'a,b,c\n1,"x,y\nz",3\n')  # a quoted field with a comma and a line break is fine
    assert shape.records == 2
    with pytest.raises(ExtractError, match="row 3: a field"):
        shape.feed(b'4,"' + b"q," * 15 + b'",5\n')  # 32 bytes within quotes: one field
    shape = CsvShape("f.csv", limits.DEFAULT.with_overrides({"csv_max_field_bytes": 20}))
    shape.feed(b"a,b\n" + b"1234567890,1234567890\n" * 3)  # many fields of 10 bytes: fine
    shape.feed(b'"ab""cd""ef",x\n')  # escaped quotes keep the parity


def test_limits_are_enforced_across_chunks():
    shape = CsvShape("f.csv", limits.DEFAULT.with_overrides({"csv_max_field_bytes": 100}))
    shape.feed(b"h1,h2\nv," + b"x" * 60)
    with pytest.raises(ExtractError, match="row 2"):
        shape.feed(b"y" * 60)


def test_a_field_limit_applies_in_a_real_run(tmp_path):
    folder = landing(tmp_path / "landing")
    text = payments_csv().replace("欧阳秘密", "欧阳" + "长" * 100, 1)
    (folder / "pension_payments.csv").write_text(text, encoding="utf-8")
    proc = run(folder, tmp_path / "out", "--limit", "csv_max_field_bytes=200")
    out = assert_clean_failure(proc, "pension_payments.csv", "row 2: a field is longer than the limit of 200 bytes")
    assert_no_personal_data(out)


def test_a_malformed_quote_error_names_the_line_and_quotes_no_rows(tmp_path):
    folder = landing(tmp_path / "landing")
    rows = payments_csv(30).splitlines(True)
    rows[5] = rows[5].replace("欧阳秘密", '"欧阳"秘密"x')
    rows[8] = rows[8].replace(",110,", '"",110,"')
    (folder / "pension_payments.csv").write_text("".join(rows), encoding="utf-8")
    proc = run(folder, tmp_path / "out")
    out = assert_clean_failure(proc, "pension_payments.csv", "malformed near line 6", "not escaped")
    assert_no_personal_data(out)


def test_bad_limit_names_and_values_are_refused(tmp_path):
    folder = landing(tmp_path / "landing")
    assert_clean_failure(run(folder, tmp_path / "out", "--limit", "csv_max_feld_bytes=1"), "unknown limit(s): csv_max_feld_bytes")
    assert_clean_failure(run(folder, tmp_path / "out", "--limit", "csv_max_field_bytes=lots"), "is not a size")


def test_short_fields_in_a_long_line_across_chunks_are_fine():
    shape = CsvShape("f.csv", limits.DEFAULT.with_overrides({"csv_max_field_bytes": 100, "csv_max_line_bytes": 10_000}))
    shape.feed(b"h1,h2\n" + b"abcdefgh," * 50)  # a 450-byte line of 8-byte fields, cut mid-line
    shape.feed(b"abcdefgh," * 50 + b"\n")
    with pytest.raises(ExtractError, match="row 3: a field"):
        shape.feed(b"x" * 150 + b"\n")
