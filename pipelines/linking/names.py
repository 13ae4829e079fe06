"""Name keys and name similarity for person linking.

Chinese names repeat a lot, so every key is computed once per *distinct* name (and the
character tables once per distinct character), never per record:

* ``name_s`` — the name in simplified characters (opencc ``t2s``; 張偉 → 张伟). Only names
  holding a character that t2s changes are converted (phrase-aware, whole name); the rest
  are simplified already.
* ``pinyin`` — toneless pinyin of ``name_s`` without separators (王伟, 王玮 → ``wangwei``),
  the homophone key. Built from a per-character table (pypinyin's default reading), so the
  same character always gives the same syllable on both sides of a comparison. The middle
  dot of minority names and spaces are dropped (买买提·艾力 = 买买提艾力).

Similarity is character-level (rapidfuzz), batched over arrays: DuckDB's own string
functions count UTF-8 bytes, not characters (``levenshtein('王小明','王晓明') = 3``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import polars as pl

_DROP = {"·", "•", "‧", "・", ".", " ", "-"}


@lru_cache(maxsize=1)
def _converter():
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def char_pinyin(char: str) -> str:
    """Toneless lower-case pinyin of one character ('' for separators; non-Han kept as is)."""
    if char in _DROP:
        return ""
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(char, style=Style.NORMAL, errors="default")).lower()


def to_simplified(name: str) -> str:
    """One name in simplified characters (opencc t2s)."""
    return _converter().convert(name)


def _chars(names: pl.Series) -> list[str]:
    return names.str.split("").explode().drop_nulls().unique().sort().to_list()


def name_keys(names: pl.Series) -> pl.DataFrame:
    """Keys of the distinct non-null names in ``names``: columns ``name``, ``name_s`` (simplified)
    and ``pinyin`` (homophone key), one row per distinct name, sorted by name."""
    distinct = names.drop_nulls().unique().sort().rename("name")
    if distinct.len() == 0:
        return pl.DataFrame(schema={"name": pl.String, "name_s": pl.String, "pinyin": pl.String})
    converter = _converter()
    changing = [c for c in _chars(distinct) if converter.convert(c) != c]
    if changing:
        needs = distinct.str.contains("[" + "".join(changing).replace("\\", "\\\\").replace("]", "\\]") + "]")
        to_convert = distinct.filter(needs)
        converted = pl.Series([converter.convert(n) for n in to_convert.to_list()], dtype=pl.String)
        mapping = dict(zip(to_convert.to_list(), converted.to_list()))
        simplified = distinct.replace(mapping)
    else:
        simplified = distinct
    chars = _chars(simplified)
    table = {c: char_pinyin(c) for c in chars}
    pinyin = simplified.str.split("").list.eval(pl.element().replace(table)).list.join("")
    return pl.DataFrame({"name": distinct, "name_s": simplified, "pinyin": pinyin})


def name_similarity(a, b) -> np.ndarray:
    """Character-level normalised Levenshtein similarity (0..1) of two equal-length sequences of
    names (numpy object arrays, polars series or lists), pairwise with rapidfuzz ``cpdist`` (C++, no
    Python loop per pair). Missing names give 0."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    if isinstance(a, pl.Series):
        a = a.to_numpy()
    if isinstance(b, pl.Series):
        b = b.to_numpy()
    a = np.asarray(a, dtype=object)
    b = np.asarray(b, dtype=object)
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    missing = np.equal(a, None) | np.equal(b, None)
    if missing.any():
        a = np.where(missing, "", a)
        b = np.where(missing, "", b)
    sim = process.cpdist(a, b, scorer=Levenshtein.normalized_similarity, workers=-1)
    return np.where(missing, np.float32(0), sim).astype(np.float32)
