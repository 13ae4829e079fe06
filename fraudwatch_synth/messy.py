"""What real exports look like: Chinese headers, legacy 15-digit IDs, mixed date,
period and money formats, full-width digits, stray spaces, scheme names, enum aliases,
and a few unreadable rows. Every change is one of representation only, so a correct
ingest recovers exactly the clean values; unreadable rows are extra copies."""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.contracts import Contract
from fraudwatch_synth import reference as ref

LEGACY_SHARE = 0.05
FULL_WIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}


def _variants(s: pl.Series, rng: np.random.Generator, p: list[float], forms: list) -> pl.Series:
    """Render a random share p[k] of the rows with forms[k] (None = as is); only those rows are touched."""
    choice = np.searchsorted(np.cumsum(p)[:-1], rng.random(len(s)), side="right")
    out = s.clone()
    for k, form in enumerate(forms):
        idx = np.flatnonzero(choice == k)
        if form is not None and len(idx):
            out = out.scatter(idx, form(s.gather(idx)))
    return out


def _full_width(s: pl.Series) -> pl.Series:
    return s.str.replace_many(list(FULL_WIDTH), list(FULL_WIDTH.values()))


def _cat(*parts: pl.Series | str) -> pl.Series:
    return pl.select(pl.concat_str([pl.lit(x) for x in parts])).to_series()


def person_id(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """~5 % legacy 15-digit (only valid 18-char IDs of people born 1900-1999: upgrading a 15-digit
    form recomputes the check character, which would silently repair an ID planted with a wrong
    one), a few lower-case, full-width or padded."""
    legacy = (pl.Series(rng.random(len(s)) < LEGACY_SHARE) & (s.str.len_chars() == 18) & (s.str.slice(6, 2) == "19")
              & pl.Series(_checksum_ok(s)))
    idx = np.flatnonzero(legacy.fill_null(False).to_numpy())
    if len(idx):
        old = s.gather(idx)
        s = s.clone().scatter(idx, old.str.slice(0, 6) + old.str.slice(8, 9))
    # and the spreadsheet text tricks real exports carry (suspects.md, extracts.md "person ID"):
    # a leading apostrophe, a ="…" wrapper, a leading tab, digits grouped by spaces, a zero-width space
    return _variants(s, rng, [0.96, 0.01, 0.01, 0.005, 0.003, 0.003, 0.003, 0.003, 0.003],
                     [None, lambda x: x.str.to_lowercase(), _full_width, lambda x: _cat(" ", x, " "),
                      lambda x: _cat("'", x), lambda x: _cat('="', x, '"'), lambda x: _cat("\t", x),
                      lambda x: _cat(x.str.slice(0, 6), " ", x.str.slice(6, 8), " ", x.str.slice(14)),
                      lambda x: _cat(x.str.slice(0, 10), "\u200b", x.str.slice(10))])


def _checksum_ok(s: pl.Series) -> np.ndarray:
    """Whether each value is 17 digits and the right GB 11643 check character."""
    from fraudwatch_synth.ids import fixed_width_matrix, id_check_chars

    mat, ok = fixed_width_matrix(s, 18)
    body = mat[:, :17].astype(np.int64) - ord("0")
    ok &= ((body >= 0) & (body <= 9)).all(axis=1)
    return ok & (id_check_chars(np.clip(body, 0, 9)) == mat[:, 17])


def firm_id(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    return _variants(s, rng, [0.95, 0.05], [None, lambda x: x.str.to_lowercase()])


def name(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Stray spaces: inside Han names (never around the middle dot), around any name."""
    def inner(x: pl.Series) -> pl.Series:
        split = _cat(x.str.slice(0, 1), " ", x.str.slice(1))
        return pl.select(pl.when(pl.lit(x).str.contains("·")).then(pl.lit(x)).otherwise(pl.lit(split))).to_series()

    return _variants(s, rng, [0.95, 0.03, 0.02], [None, inner, lambda x: _cat(" ", x, "  ")])


def _unpad(x: pl.Series) -> pl.Series:
    return x.cast(pl.Int32).cast(pl.String)


def date(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """'2024-03-05' -> one of 2024-03-05, 2024/3/5, 20240305, 2024年3月5日."""
    def parts(x: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
        return x.str.slice(0, 4), _unpad(x.str.slice(5, 2)), _unpad(x.str.slice(8, 2))

    return _variants(s, rng, [0.4, 0.25, 0.2, 0.15], [
        None,
        lambda x: _cat(*[v for pair in zip(parts(x), ["/", "/", ""]) for v in pair]),
        lambda x: x.str.replace_all("-", ""),
        lambda x: _cat(*[v for pair in zip(parts(x), ["年", "月", "日"]) for v in pair]),
    ])


def period(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """'2024-03' -> one of 2024-03, 202403, 2024年3月, 2024/03."""
    return _variants(s, rng, [0.4, 0.3, 0.2, 0.1], [
        None,
        lambda x: x.str.replace("-", ""),
        lambda x: _cat(x.str.slice(0, 4), "年", _unpad(x.str.slice(5, 2)), "月"),
        lambda x: x.str.replace("-", "/"),
    ])


def _grouped(x: pl.Series) -> pl.Series:
    """'1234567.50' -> '1,234,567.50'."""
    whole, cents = x.str.split(".").list.first(), x.str.split(".").list.last()
    w = whole.cast(pl.Int64)
    e = pl.lit(w)
    three = lambda v: v.cast(pl.String).str.zfill(3)  # noqa: E731
    out = (pl.when(e >= 1_000_000).then(pl.concat_str([(e // 1_000_000).cast(pl.String), pl.lit(","),
                                                        three(e // 1000 % 1000), pl.lit(","), three(e % 1000)]))
           .when(e >= 1000).then(pl.concat_str([(e // 1000).cast(pl.String), pl.lit(","), three(e % 1000)]))
           .otherwise(pl.lit(whole)))
    return pl.select(pl.concat_str([out, pl.lit("."), pl.lit(cents)])).to_series()


def money(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """'1234.50' -> 1234.50, 1,234.50, ¥1234.50, 1234.5, or full-width digits."""
    return _variants(s, rng, [0.6, 0.2, 0.1, 0.07, 0.03], [
        None, _grouped, lambda x: _cat("¥", x),
        lambda x: x.str.strip_chars_end("0").str.strip_chars_end("."), _full_width,
    ])


def scheme(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Codes, full Chinese names or short names."""
    full = {str(k): v[0] for k, v in ref.SCHEME_NAMES.items()}
    short = {str(k): v[1] for k, v in ref.SCHEME_NAMES.items()}
    return _variants(s, rng, [0.6, 0.25, 0.15], [None, lambda x: x.replace(full), lambda x: x.replace(short)])


def boolean(s: pl.Series, rng: np.random.Generator) -> pl.Series:
    def pair(yes: str, no: str):
        return lambda x: pl.select(pl.when(pl.lit(x) == "true").then(pl.lit(yes)).otherwise(pl.lit(no))).to_series()

    return _variants(s, rng, [0.5, 0.2, 0.15, 0.15], [pair("是", "否"), pair("Y", "N"), pair("1", "0"), None])


def enum(s: pl.Series, values: dict[str, list[str]], rng: np.random.Generator) -> pl.Series:
    """Now and then an accepted alias instead of the canonical value."""
    mapping = {k: v[0] for k, v in values.items() if v}
    return _variants(s, rng, [0.8, 0.2], [None, lambda x: x.replace(mapping)])


def messy_values(df: pl.DataFrame, contract: Contract, rng: np.random.Generator) -> pl.DataFrame:
    """Re-render every column of a clean text frame the way real exports do."""
    renderers = {"person_id": person_id, "firm_id": firm_id, "name": name, "date": date, "period": period,
                 "money": money, "scheme": scheme, "boolean": boolean}
    columns = []
    for col in contract.columns:
        if col.name not in df.columns:
            continue
        kind = col.type.value
        if kind in renderers:
            columns.append(renderers[kind](df[col.name], rng).alias(col.name))
        elif kind == "enum":
            columns.append(enum(df[col.name], col.values or {}, rng).alias(col.name))
    return df.with_columns(columns)


# Broken value per kind of problem, and which column types can carry it.
BAD_KINDS = {
    "unparseable_money": ("money", "abc"),
    "missing_required": ("person_id", ""),
    "unparseable_period": ("period", None),  # year-13
    "unparseable_date": ("date", None),      # year-13-45
    "id_damaged_by_number": ("person_id", None),  # the ID through a number: 4.20113E+17
}


def bad_rows(df: pl.DataFrame, contract: Contract, rng: np.random.Generator, count: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Insert `count` unreadable copies of random rows; returns (frame, [position, reason, column]).

    position is the 0-based data row of each copy in the returned frame.

    Each copy breaks one required column; ids declared unique get a fresh value."""
    required = {c.name: c.type.value for c in contract.columns if c.required}
    choices = [(k, col) for k, (t, _) in BAD_KINDS.items() for col, ct in required.items() if ct == t]
    if not choices or not len(df) or count <= 0:
        return df, pl.DataFrame(schema={"position": pl.Int64, "reason": pl.String, "column": pl.String})
    src = np.sort(rng.choice(len(df), min(count, len(df)), replace=False))
    picks = rng.integers(0, len(choices), len(src))
    copies = df[src]
    unique = [c.name for c in contract.columns if c.unique]
    for u in unique:
        copies = copies.with_columns((pl.col(u) + pl.lit("B") + pl.int_range(pl.len()).cast(pl.String)).alias(u))
    for i, (kind, col) in enumerate(choices):
        hit = pl.lit(pl.Series(picks == i))
        if kind == "unparseable_period":
            broken = pl.col(col).str.slice(0, 4) + pl.lit("-13")
        elif kind == "unparseable_date":
            broken = pl.col(col).str.slice(0, 4) + pl.lit("-13-45")
        elif kind == "id_damaged_by_number":
            broken = pl.col(col).str.slice(0, 1) + pl.lit(".") + pl.col(col).str.slice(1, 5) + pl.lit("E+17")
        else:
            broken = pl.lit(BAD_KINDS[kind][1])
        copies = copies.with_columns(pl.when(hit).then(broken).otherwise(pl.col(col)).alias(col))
    # Each copy goes right after its source row; later copies shift by the ones before them.
    position = src + 1 + np.arange(len(src))
    order = np.r_[np.arange(len(df)), src + 0.5]
    merged = pl.concat([df, copies]).with_columns(_o=pl.Series(order)).sort("_o").drop("_o")
    kinds = pl.Series([k for k, _ in choices]).gather(picks)
    columns = pl.Series([c for _, c in choices]).gather(picks)
    return merged, pl.DataFrame({"position": position.astype(np.int64), "reason": kinds, "column": columns})


def chinese_headers(df: pl.DataFrame, contract: Contract, rng: np.random.Generator) -> pl.DataFrame:
    """Rename columns to one of their Chinese aliases."""
    mapping = {}
    for col in contract.columns:
        if col.name in df.columns and col.aliases:
            mapping[col.name] = col.aliases[int(rng.integers(0, len(col.aliases)))]
    return df.rename(mapping)
