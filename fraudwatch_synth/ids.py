"""Vectorised identifiers: GB 11643 person IDs, their legacy 15-digit form, GB 32100
USCCs and bank card numbers, built as byte matrices and turned into polars strings."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ID_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)

USCC_CHARSET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)
# GB 11714 organisation code (positions 9-17 of a USCC): 8 chars + check.
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)

_ZERO = ord("0")


def digits(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an (n, width) uint8 matrix (0-9)."""
    text = pl.Series(np.asarray(values, dtype=np.int64)).cast(pl.String).str.zfill(width)
    mat, ok = fixed_width_matrix(text, width)
    if not ok.all():
        raise ValueError(f"value wider than {width} digits")
    return mat - np.uint8(_ZERO)


def strings(chars: np.ndarray, lengths: np.ndarray | None = None) -> pl.Series:
    """ASCII byte matrix (n, w) -> polars String series; `lengths` keeps only the first k bytes of each row."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, width = chars.shape
    if lengths is None:
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
        data = chars.tobytes()
    else:
        keep = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
        data = chars[keep].tobytes()
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    return pl.Series(pl.from_arrow(arr)).cast(pl.String)


def id_check_chars(first17: np.ndarray) -> np.ndarray:
    """GB 11643 check characters (ASCII codes) for an (n, 17) matrix of digit values."""
    total = first17.astype(np.int64) @ ID_WEIGHTS
    return ID_CHECK[total % 11]


def person_id_matrix(region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """(n, 18) ASCII matrix of 18-digit person IDs: region(6) + YYYYMMDD + seq(3) + check."""
    birth = np.asarray(birth, dtype="datetime64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (birth - birth.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    first17 = np.hstack([
        digits(region, 6), digits(year, 4), digits(month, 2), digits(day, 2), digits(seq, 3),
    ])
    return np.hstack([first17 + _ZERO, id_check_chars(first17)[:, None]]).astype(np.uint8)


def legacy15(ids18: pl.Series) -> pl.Series:
    """The pre-1999 15-digit form of 18-digit IDs: drop the century '19' and the check char."""
    return ids18.str.slice(0, 6) + ids18.str.slice(8, 9)


def org_code_matrix(serial: np.ndarray) -> np.ndarray:
    """(n, 9) ASCII matrix of numeric GB 11714 organisation codes (8 digits + check)."""
    body = digits(serial, 8)
    check = 11 - (body.astype(np.int64) @ ORG_WEIGHTS) % 11
    check_char = np.where(check == 10, ord("X"), np.where(check == 11, _ZERO, check + _ZERO))
    return np.hstack([body + _ZERO, check_char[:, None]]).astype(np.uint8)


def uscc_check_index(body_idx: np.ndarray) -> np.ndarray:
    """GB 32100 check position in USCC_CHARSET for an (n, 17) matrix of charset indexes."""
    check = 31 - (body_idx.astype(np.int64) @ USCC_WEIGHTS) % 31
    return np.where(check == 31, 0, check)


def make_usccs(region: np.ndarray, serial: np.ndarray, corrupt: np.ndarray | None = None) -> pl.Series:
    """USCCs '91' + region + organisation code + check for enterprises; `corrupt` rows get a wrong check char."""
    n = len(region)
    head = np.tile(np.frombuffer(b"91", dtype=np.uint8), (n, 1))
    body = np.hstack([head, digits(region, 6) + _ZERO, org_code_matrix(serial)])
    lookup = np.full(256, 255, dtype=np.uint8)
    lookup[USCC_CHARSET] = np.arange(len(USCC_CHARSET), dtype=np.uint8)
    check = uscc_check_index(lookup[body])
    if corrupt is not None:
        check = np.where(corrupt, (check + 1) % 31, check)
    return strings(np.hstack([body, USCC_CHARSET[check][:, None]]))


def bank_accounts(index: np.ndarray, rng: np.random.Generator) -> pl.Series:
    """Unique 16-19 digit debit card numbers: bank BIN + filler + index-derived body + Luhn digit."""
    from fraudwatch_synth.reference import BANK_BINS

    n = len(index)
    bins = np.asarray(BANK_BINS, dtype=np.int64)[rng.integers(0, len(BANK_BINS), n)]
    filler_len = rng.integers(0, 3, n)  # 0..2 -> total 16..18, plus 1 for 19 below
    filler_len = filler_len + (rng.random(n) < 0.2)
    # An affine bijection on 10^9 keeps bodies unique while hiding the index order.
    body = (np.asarray(index, dtype=np.int64) * 738_219_157 + 104_729) % 1_000_000_000
    filler = digits(rng.integers(0, 1000, n), 3)
    width = 6 + 3 + 9 + 1
    mat = np.zeros((n, width), dtype=np.uint8)
    mat[:, :6] = digits(bins, 6)
    mat[:, 6:9] = filler
    # Shift the body left over unused filler positions so each number is contiguous.
    body_d = digits(body, 9)
    cols = 6 + filler_len[:, None] + np.arange(9)[None, :]
    np.put_along_axis(mat, cols, body_d, axis=1)
    lengths = 6 + filler_len + 9 + 1
    # Luhn over the first length-1 digits, counting from the right: every second digit is doubled.
    from_right = (lengths.astype(np.int8)[:, None] - 2) - np.arange(width, dtype=np.int8)[None, :]
    luhn = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)
    contrib = np.where((from_right & 1) == 0, luhn[mat], mat)
    contrib[from_right < 0] = 0
    total = contrib.sum(axis=1, dtype=np.int64)
    check = (10 - total % 10) % 10
    np.put_along_axis(mat, (lengths - 1)[:, None], check[:, None].astype(np.uint8), axis=1)
    return strings(mat + _ZERO, lengths)


def fixed_width_matrix(values: pl.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, width) byte matrix of strings plus a mask of rows whose byte length is exactly `width`."""
    arr = values.fill_null("").to_arrow().cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    ok = lengths == width
    if ok.all():  # all rows exactly `width` bytes: the data buffer is the matrix
        return data[offsets[0] : offsets[0] + len(values) * width].reshape(len(values), width).copy(), ok
    starts = np.where(ok, offsets[:-1], 0)
    mat = np.zeros((len(values), width), dtype=np.uint8)
    if len(data):
        idx = np.minimum(starts[:, None] + np.arange(width)[None, :], len(data) - 1)
        mat = np.where(ok[:, None], data[idx], 0).astype(np.uint8)
    return mat, ok


def uscc_valid(values: pl.Series) -> np.ndarray:
    """Whether each value is an 18-char GB 32100 USCC with a correct check character."""
    mat, ok = fixed_width_matrix(values, 18)
    lookup = np.full(256, 255, dtype=np.int64)
    lookup[USCC_CHARSET] = np.arange(len(USCC_CHARSET))
    idx = lookup[mat]
    ok &= (idx != 255).all(axis=1)
    check = uscc_check_index(np.where(idx[:, :17] == 255, 0, idx[:, :17]))
    return ok & (check == idx[:, 17])
