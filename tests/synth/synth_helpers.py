"""Helpers shared by the synth tests: independent checksums and reading output files."""

from __future__ import annotations

from pathlib import Path

import pytest

EXTRACTS = ["pension_payments", "deaths", "household", "prisoners", "subsidy_payments", "certifications",
            "stabilization_refunds", "refund_transfers"]
GB18030 = {"pension_payments", "deaths", "subsidy_payments", "certifications"}

W_ID = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
W_USCC = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def id_ok(pid: str) -> bool:
    """GB 11643: 17 digits and the right check character."""
    if len(pid) != 18 or not pid[:17].isdigit():
        return False
    return "10X98765432"[sum(int(c) * w for c, w in zip(pid, W_ID)) % 11] == pid[17]


def upgrade(pid15: str) -> str:
    """Legacy 15-digit ID -> 18-digit ID."""
    body = pid15[:6] + "19" + pid15[6:]
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, W_ID)) % 11]


def uscc_ok(code: str) -> bool:
    """GB 32100 check character."""
    if len(code) != 18 or any(c not in USCC_CHARS for c in code):
        return False
    check = 31 - sum(USCC_CHARS.index(c) * w for c, w in zip(code, W_USCC)) % 31
    return USCC_CHARS[0 if check == 31 else check] == code[17]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def extract_files(folder: Path, extract: str) -> list[Path]:
    """The files of one extract in a synth folder (asserts there is at least one)."""
    files = sorted(p for p in folder.iterdir() if p.name.startswith(extract) and p.suffix in (".csv", ".parquet"))
    assert files, f"{extract} missing in {folder}"
    return files


def decode(path: Path, extract: str) -> tuple[str, str]:
    """Text and separator of a messy CSV, checking it is encoded the way it was meant to be."""
    raw = path.read_bytes()
    if extract in GB18030:
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        text = raw.decode("gb18030")
    else:
        assert raw.startswith(b"\xef\xbb\xbf"), path
        text = raw.decode("utf-8-sig")
    return text, "\t" if extract == "prisoners" else ","
