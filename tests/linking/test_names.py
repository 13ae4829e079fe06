"""Name keys (simplified form, homophone key) per distinct name, and character-level similarity."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipelines.linking.names import char_pinyin, name_keys, name_similarity


def keys(*names):
    return {r["name"]: (r["name_s"], r["pinyin"]) for r in name_keys(pl.Series(list(names))).to_dicts()}


def test_traditional_names_simplify():
    k = keys("張偉", "劉德華", "张伟", "李發")
    assert k["張偉"] == ("张伟", "zhangwei") == k["张伟"]
    assert k["劉德華"][0] == "刘德华"
    assert k["李發"][0] == "李发"


def test_homophones_share_the_pinyin_key_but_not_the_name():
    k = keys("王伟", "王玮", "王薇", "王小明", "王晓明")
    assert k["王伟"][1] == k["王玮"][1] == k["王薇"][1] == "wangwei"
    assert k["王伟"][0] != k["王玮"][0]
    assert k["王小明"][1] == k["王晓明"][1]


def test_different_sounding_names_differ():
    k = keys("张三", "张山", "李四")
    assert k["张三"][1] != k["张山"][1]  # san / shan
    assert k["张三"][1] != k["李四"][1]


def test_minority_names_drop_the_middle_dot():
    k = keys("买买提·艾力", "买买提艾力", "买买提•艾力")
    assert k["买买提·艾力"][1] == k["买买提艾力"][1] == k["买买提•艾力"][1] == "maimaitiaili"
    assert k["买买提·艾力"][0] == "买买提·艾力"  # the name itself is kept


def test_one_row_per_distinct_name_and_nulls_skipped():
    out = name_keys(pl.Series(["王伟", None, "王伟", "張偉"]))
    assert out["name"].to_list() == sorted(["王伟", "張偉"])
    assert name_keys(pl.Series([], dtype=pl.String)).height == 0


def test_char_pinyin_is_toneless_and_separators_empty():
    assert char_pinyin("曾") == char_pinyin("曾")  # the same reading both sides, whatever it is
    assert char_pinyin("·") == ""
    assert char_pinyin("A") == "a"


def test_similarity_counts_characters_not_bytes():
    sim = name_similarity(pl.Series(["王小明", "张伟", "张建国", "李四"]), pl.Series(["王晓明", "张玮", "张建军", "王五"]))
    assert sim == pytest.approx(np.array([2 / 3, 0.5, 2 / 3, 0.0]), abs=1e-6)


def test_similarity_of_missing_names_is_zero():
    sim = name_similarity(pl.Series(["王伟", None]), pl.Series([None, None], dtype=pl.String))
    assert sim.tolist() == [0.0, 0.0]
    assert len(name_similarity(pl.Series([], dtype=pl.String), pl.Series([], dtype=pl.String))) == 0


def test_similarity_prefilter_never_skips_a_similar_pair():
    """scoring.compare sends a pair to rapidfuzz only when the longer name has three or more
    characters and, below five, the names share the first or the last character: a similarity
    above 0.5 is impossible otherwise. Checked against rapidfuzz on random short names."""
    from rapidfuzz.distance import Levenshtein

    rng = np.random.default_rng(1)
    alphabet = list("王李张伟芳明华")
    for _ in range(20000):
        a = "".join(rng.choice(alphabet, rng.integers(1, 7)))
        b = "".join(rng.choice(alphabet, rng.integers(1, 7)))
        longest = max(len(a), len(b))
        sent = longest >= 3 and (longest >= 5 or a[0] == b[0] or a[-1] == b[-1])
        if Levenshtein.normalized_similarity(a, b) > 0.5 and a != b:
            assert sent, (a, b)
