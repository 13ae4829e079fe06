"""Planted identity cases (issue 4): one person behind two IDs, death records filed under a broken
ID, and the near misses a linker must not fall for.

Variants are IDs standing for a planted person (``Plan.variants``): paid under
(``Plan.variant_pension``, role ``payee``) or named in a death record (``Plan.variant_deaths``,
role ``death``). Each kind below is registered in ``cases.PERSON_KINDS``; what it must (or must not)
fire goes to ``Plan.identity_intents`` / ``Plan.identity_near_misses``, never into the strict
ground truth. ``identity_truth.py`` computes the expected findings.

Positives (duplicate_identity): ``di_substitution`` (one digit of the region or sequence code
wrong, checksum fails), ``di_transposition_trad`` (adjacent digits swapped, name in traditional
characters), ``di_bad_check_homophone`` (wrong check character, homophone name),
``di_forged_valid`` (a valid ID one sequence digit away, unknown to the household register).
Positives (paid_after_death_weak_match): the pensioner died and the only death record carries
``wd_bad_check`` (wrong check character), ``wd_typo_trad`` (one digit wrong, traditional name),
``wd_garbled`` (two digits wrong) or ``wd_unknown_valid`` (a valid ID nobody else has).
Near misses: a namesake born the same day with a valid ID of a far region dies (another person),
a death record whose gender digit contradicts the payee's, twins in one household (same birth date, homophone or similar names, valid IDs one
digit apart; one dies under an ID with a wrong check character), two registered namesakes with a
common name born the same day in neighbouring regions (IDs one digit apart; a third, unpaid
namesake dies under a broken ID), and IDs whose one wrong digit changes the birth date (a
payee and a death record).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable

import numpy as np
import polars as pl

from fraudwatch_synth import reference as ref
from fraudwatch_synth.ids import fixed_width_matrix, id_check_chars, person_id_matrix, strings

if TYPE_CHECKING:
    from fraudwatch_synth.cases import Ctx

DI = "duplicate_identity"
PAD = "paid_after_death"
WEAK_RULE = "paid_after_death_weak_match"

COMMON_NAMES = ["王伟", "张伟", "王芳", "李娜", "张敏", "李静", "王静", "刘伟", "王秀英", "李秀英"]
# Homophones (same toneless pinyin; checked against pypinyin by the tests) of given-name characters.
HOMOPHONES: dict[str, str] = {
    "伟": "玮炜维薇", "明": "铭鸣", "华": "桦骅", "军": "君钧", "杰": "洁捷", "涛": "韬滔", "平": "萍苹",
    "红": "鸿宏", "英": "瑛莹", "玲": "铃苓", "燕": "艳雁", "娟": "鹃", "梅": "玫媚", "斌": "彬", "辉": "晖徽",
    "鹏": "朋", "飞": "菲非", "鑫": "欣新", "宇": "雨羽", "浩": "昊皓", "凯": "楷铠", "健": "建剑", "俊": "骏峻",
    "帆": "凡繁", "宁": "凝", "龙": "隆", "林": "琳霖", "阳": "洋杨", "志": "智治", "文": "雯闻", "福": "富",
    "荣": "容蓉", "静": "靖婧", "丽": "莉俐", "芳": "方坊", "敏": "闵岷", "霞": "侠遐", "秀": "绣", "兰": "岚澜",
    "珍": "祯贞", "凤": "峰锋", "琴": "勤芹", "洁": "杰", "慧": "惠蕙", "淑": "舒书", "玉": "钰毓", "莲": "涟",
    "翠": "萃", "月": "悦越", "婷": "亭庭", "颖": "莹", "晶": "菁", "彩": "采", "爱": "艾", "秋": "丘", "春": "椿",
    "荷": "禾", "云": "芸耘", "强": "蔷", "磊": "蕾垒", "勇": "永咏", "刚": "钢纲", "波": "博", "峰": "锋",
    "东": "冬", "德": "得", "兵": "冰", "新": "欣", "永": "勇", "清": "青", "正": "政", "胜": "盛", "全": "泉",
    "喜": "熙", "发": "法", "成": "诚", "民": "敏", "忠": "钟", "庆": "青", "祥": "翔", "贵": "桂", "生": "升",
    "宝": "保", "金": "晋", "义": "毅", "学": "雪", "利": "立", "山": "珊", "国": "果", "建": "健", "旭": "序绪",
    "娜": "纳", "琳": "林霖", "巧": "乔", "美": "梅", "素": "苏", "雪": "学", "桂": "贵", "艳": "燕", "芬": "纷",
    "萍": "平",
}
# Surnames with a traditional form (张→張 ...), used to give a traditional variant to any name.
TRAD_SURNAMES = ["张", "刘", "陈", "杨", "黄", "赵", "吴", "孙", "马", "郑", "谢", "韩", "冯", "邓"]
CHECK_CHARS = np.frombuffer(b"0123456789X", dtype=np.uint8)
ZERO = ord("0")
REGION_POS, SEQ_POS = tuple(range(6)), (14, 15)   # positions a positive typo may hit (never the birth digits)


@lru_cache(maxsize=2)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


# --- ID byte matrices ------------------------------------------------------------------


def id_matrix(ids: pl.Series) -> np.ndarray:
    """(n, 18) ASCII matrix of 18-char IDs."""
    return fixed_width_matrix(ids, 18)[0]


def checks(mat: np.ndarray) -> np.ndarray:
    """The right GB 11643 check character of each row's body."""
    return id_check_chars((mat[:, :17] - ZERO).astype(np.int64))


def revalidate(mat: np.ndarray) -> np.ndarray:
    """Rows with their check character recomputed (valid)."""
    out = mat.copy()
    out[:, 17] = checks(out)
    return out


def substitute(mat: np.ndarray, pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with the digit at ``pos`` (per row) replaced by another digit; the check char is kept."""
    out = mat.copy()
    rows = np.arange(len(mat))
    out[rows, pos] = (out[rows, pos] - ZERO + rng.integers(1, 10, len(mat))) % 10 + ZERO
    return out


def transpose(mat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with two adjacent differing characters swapped, inside the region code (0-5) or at the
    sequence/check end (14-17); never inside the birth digits."""
    starts = np.array([0, 1, 2, 3, 4, 14, 15, 16])
    differ = mat[:, starts] != mat[:, starts + 1]
    pick = np.argmax(rng.random(differ.shape) * differ, axis=1)
    i = starts[pick]
    rows = np.arange(len(mat))
    out = mat.copy()
    out[rows, i], out[rows, i + 1] = mat[rows, i + 1], mat[rows, i]
    return out


def wrong_check(mat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with a check character different from the right one."""
    out = mat.copy()
    index = np.zeros(256, dtype=np.int64)
    index[CHECK_CHARS] = np.arange(len(CHECK_CHARS))
    right = index[checks(mat)]
    out[:, 17] = CHECK_CHARS[(right + rng.integers(1, 11, len(mat))) % 11]
    return out


def birth_digit_typo(mat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows with one digit of the birth day changed so that the date stays real (day 1-28) but differs."""
    day = (mat[:, 12] - ZERO).astype(np.int64) * 10 + (mat[:, 13] - ZERO)
    options = [[d for d in range(1, 29) if d != x and (d // 10 == x // 10) != (d % 10 == x % 10)] for x in range(32)]
    new = np.array([options[x][k % len(options[x])] for x, k in zip(day, rng.integers(0, 1000, len(day)))])
    out = mat.copy()
    out[:, 12] = new // 10 + ZERO
    out[:, 13] = new % 10 + ZERO
    return out


def _text(mat: np.ndarray) -> pl.Series:
    return strings(mat).alias("person_id")


def _key(mat: np.ndarray) -> np.ndarray:
    return (mat[:, :17] - ZERO).astype(np.int64) @ (10 ** np.arange(16, -1, -1, dtype=np.int64))


def _fresh_valid(c: Ctx, mat: np.ndarray, positions: tuple[int, ...]) -> np.ndarray:
    """Valid IDs one digit (at one of ``positions``) away from each row, unknown to the population
    and to each other."""
    out = revalidate(substitute(mat, c.rng.choice(positions, len(mat)), c.rng))
    for _ in range(50):
        keys = _key(out)
        clash = pl.Series(keys).is_in(pl.Series(c.pop.id_key).implode()).to_numpy() | pl.Series(keys).is_duplicated().to_numpy()
        if not clash.any():
            return out
        out[clash] = revalidate(substitute(mat[clash], c.rng.choice(positions, int(clash.sum())), c.rng))
    raise ValueError("synth bug: cannot forge unique valid IDs")


# --- names -----------------------------------------------------------------------------


def traditional(names: pl.Series, rng: np.random.Generator) -> tuple[pl.Series, pl.Series]:
    """(simplified names, their traditional forms): a name without a traditional form gets a
    surname that has one (the returned simplified name then differs from the input)."""
    s2t, t2s = _opencc("s2t"), _opencc("t2s")
    simple, trad = [], []
    for name, pick in zip(names.to_list(), rng.integers(0, len(TRAD_SURNAMES), len(names))):
        if s2t.convert(name) == name or t2s.convert(s2t.convert(name)) != name:
            name = TRAD_SURNAMES[pick] + name[1:]
        simple.append(name)
        trad.append(s2t.convert(name))
    return pl.Series(simple, dtype=pl.String), pl.Series(trad, dtype=pl.String)


def homophone(names: pl.Series, rng: np.random.Generator) -> tuple[pl.Series, pl.Series]:
    """(names, homophone variants): the last character is swapped for a same-sounding one; a name
    whose last character has none in HOMOPHONES first gets one that has."""
    keys = list(HOMOPHONES)
    base, variant = [], []
    for name, k, j in zip(names.to_list(), rng.integers(0, len(keys), len(names)), rng.integers(0, 100, len(names))):
        if name[-1] not in HOMOPHONES or "·" in name:
            name = name[0] + keys[k] if "·" in name else name[:-1] + keys[k]
        options = HOMOPHONES[name[-1]]
        base.append(name)
        variant.append(name[:-1] + options[j % len(options)])
    return pl.Series(base, dtype=pl.String), pl.Series(variant, dtype=pl.String)


def _set_names(c: Ctx, p: np.ndarray, names: pl.Series) -> None:
    c.pop.names = c.pop.names.scatter(p, names)


# --- registering variants -------------------------------------------------------------


def _variant_numbers(c: Ctx, n: int) -> np.ndarray:
    start = sum(len(b["variant"]) for b in c.plan.variants.blocks)
    return np.arange(start, start + n, dtype=np.int64)


Remake = Callable[[np.ndarray], np.ndarray]  # row indexes -> new ID rows for them


def unused(c: Ctx, mat: np.ndarray, remake: Remake | None) -> np.ndarray:
    """``mat`` with every ID that another generated person or an earlier variant already has (or that
    repeats within ``mat``) made again by ``remake`` (a random draw; up to 50 rounds): a variant
    colliding with a real person's ID would give that person another's death record or payments."""
    for _ in range(50):
        ids = _text(mat)
        taken = pl.concat([c.pop.ids, c.plan.variants.frame()["person_id"]]).implode()
        clash = (ids.is_in(taken) | ids.is_duplicated()).to_numpy()
        if not clash.any():
            return mat
        if remake is None:
            raise ValueError("synth bug: a variant ID that cannot be redrawn collides with another ID")
        rows = np.flatnonzero(clash)
        mat = mat.copy()
        mat[rows] = remake(rows)
    raise ValueError("synth bug: cannot draw unused variant IDs")


def add_variants(c: Ctx, kind: str, p: np.ndarray, mat: np.ndarray, names: pl.Series, role: str,
                 remake: Remake | None = None) -> np.ndarray:
    """Register variant IDs (``mat``, rows colliding with another ID redrawn by ``remake``: see
    :func:`unused`) for persons ``p``; returns their variant numbers."""
    mat = unused(c, mat, remake)
    v = _variant_numbers(c, len(p))
    c.plan.variants.add(variant=v, person=p, kind=kind, person_id=_text(mat).to_numpy().astype(str),
                        name=names.to_numpy().astype(str), role=role)
    return v


def _paid_variant(c: Ctx, kind: str, p: np.ndarray, make: Remake, names: pl.Series) -> None:
    """The person is paid under the own ID all along; the variant ID (``make(rows)``) is paid for a
    stretch in the same or another region (same scheme)."""
    c.pension(p, 0, c.cal.last)
    v = add_variants(c, kind, p, make(np.arange(len(p))), names, "payee", make)
    j = c.between(0, c.cal.last, len(p))
    k = c.between(j, c.cal.last)
    elsewhere = c.rng.random(len(p)) < 0.6
    region = np.where(elsewhere, c.other_region(c.pop.region[p]), c.pop.region[p])
    fen = np.maximum(100, c.pop.amount[p] + c.rng.integers(-5000, 5000, len(p)))
    c.plan.variant_pension.add(variant=v, region=region, scheme=c.pop.scheme[p], fen=fen, first=j, last=k)


def _died_under_variant(c: Ctx, kind: str, p: np.ndarray, make: Remake, names: pl.Series) -> None:
    """The pensioner died in month d and was paid up to d+k (k 1..4); the only death record carries the
    variant (``make(rows)``)."""
    d = c.between(0, c.cal.last - 1, len(p))
    end = d + c.between(1, np.minimum(4, c.cal.last - d))
    c.pension(p, 0, end)
    v = add_variants(c, kind, p, make(np.arange(len(p))), names, "death", make)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(d, c.rng), source=c.rng.integers(0, 3, len(p)))


def _intend(c: Ctx, kind: str, p: np.ndarray, rule_id: str) -> None:
    c.plan.identity_intents.add(kind=kind, subject=p, rule_id=rule_id)


def _near(c: Ctx, kind: str, p: np.ndarray, category: str) -> None:
    c.plan.identity_near_misses.add(kind=kind, subject=p, category=category)


# --- positives -------------------------------------------------------------------------


def _own(c: Ctx, p: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return id_matrix(c.pop.ids.gather(p[rows]))


def di_substitution(c: Ctx, p: np.ndarray) -> None:
    def make(rows: np.ndarray) -> np.ndarray:
        return substitute(_own(c, p, rows), c.rng.choice(REGION_POS + SEQ_POS + (16,), len(rows)), c.rng)
    _paid_variant(c, "di_substitution", p, make, c.pop.names.gather(p))
    _intend(c, "di_substitution", p, DI)


def di_transposition_trad(c: Ctx, p: np.ndarray) -> None:
    simple, trad = traditional(c.pop.names.gather(p), c.rng)
    _set_names(c, p, simple)
    _paid_variant(c, "di_transposition_trad", p, lambda rows: transpose(_own(c, p, rows), c.rng), trad)
    _intend(c, "di_transposition_trad", p, DI)


def di_bad_check_homophone(c: Ctx, p: np.ndarray) -> None:
    base, variant = homophone(c.pop.names.gather(p), c.rng)
    _set_names(c, p, base)
    _paid_variant(c, "di_bad_check_homophone", p, lambda rows: wrong_check(_own(c, p, rows), c.rng), variant)
    _intend(c, "di_bad_check_homophone", p, DI)


def di_forged_valid(c: Ctx, p: np.ndarray) -> None:
    _paid_variant(c, "di_forged_valid", p, lambda rows: _fresh_valid(c, _own(c, p, rows), SEQ_POS), c.pop.names.gather(p))
    _intend(c, "di_forged_valid", p, DI)


def wd_bad_check(c: Ctx, p: np.ndarray) -> None:
    _died_under_variant(c, "wd_bad_check", p, lambda rows: wrong_check(_own(c, p, rows), c.rng), c.pop.names.gather(p))
    _intend(c, "wd_bad_check", p, WEAK_RULE)


def wd_typo_trad(c: Ctx, p: np.ndarray) -> None:
    simple, trad = traditional(c.pop.names.gather(p), c.rng)
    _set_names(c, p, simple)
    def make(rows: np.ndarray) -> np.ndarray:
        return substitute(_own(c, p, rows), c.rng.choice(REGION_POS + SEQ_POS, len(rows)), c.rng)
    _died_under_variant(c, "wd_typo_trad", p, make, trad)
    _intend(c, "wd_typo_trad", p, WEAK_RULE)


def wd_garbled(c: Ctx, p: np.ndarray) -> None:
    """Two wrong digits (one in the region code, one in the sequence code); the checksum fails."""
    def make(rows: np.ndarray) -> np.ndarray:
        mat = substitute(_own(c, p, rows), c.rng.choice(REGION_POS, len(rows)), c.rng)
        mat = substitute(mat, c.rng.choice(SEQ_POS, len(rows)), c.rng)
        lucky = mat[:, 17] == checks(mat)
        mat[lucky] = wrong_check(mat[lucky], c.rng)
        return mat
    _died_under_variant(c, "wd_garbled", p, make, c.pop.names.gather(p))
    _intend(c, "wd_garbled", p, WEAK_RULE)


def wd_unknown_valid(c: Ctx, p: np.ndarray) -> None:
    _died_under_variant(c, "wd_unknown_valid", p, lambda rows: _fresh_valid(c, _own(c, p, rows), SEQ_POS),
                        c.pop.names.gather(p))
    _intend(c, "wd_unknown_valid", p, WEAK_RULE)


# --- near misses -----------------------------------------------------------------------


def _reidentify(c: Ctx, p: np.ndarray, region: np.ndarray, birth: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Give persons p a new region, birth date and sequence code (hence ID and gender); returns a
    mask of the rows done (a row whose new ID is taken is left unchanged)."""
    mat = person_id_matrix(region, birth, seq)
    keys = _key(mat)
    # one hash scan of the population for the few candidate keys (sorting all ids per call was quadratic-ish)
    holders = pl.Series(c.pop.id_key).is_in(pl.Series(keys).implode()).to_numpy()
    holders[p] = False
    # of rows wanting the same new ID the first gets it; the others retry (rejecting all of them made
    # every retry collide again at 10M persons)
    ok = ~np.isin(keys, c.pop.id_key[holders]) & pl.Series(keys).is_first_distinct().to_numpy()
    q = p[ok]
    pop = c.pop
    pop.region[q], pop.birth[q], pop.male[q], pop.id_key[q] = region[ok], birth[ok], seq[ok] % 2 == 1, keys[ok]
    pop.ids = pop.ids.scatter(q, _text(mat[ok]))
    return ok


def _seq(c: Ctx, p: np.ndarray) -> np.ndarray:
    return c.pop.id_key[p] % 1000


def nm_twins(c: Ctx, p: np.ndarray) -> None:
    """Twins a, b: one household, one birth date, sequence codes differing in the last digit, homophone or
    similar names, both paid; a dies in month d under her or his ID with a wrong check character."""
    half = len(p) // 2
    a, b = p[:half], p[half: 2 * half]
    seq = _seq(c, a)
    last = seq % 10
    deltas = np.array([1, -1, 2, -2, 3, -3])
    done = np.zeros(half, dtype=bool)
    for delta in deltas[c.rng.permutation(len(deltas))]:
        todo = ~done & (last + delta >= 0) & (last + delta <= 9)
        idx = np.flatnonzero(todo)
        ok = _reidentify(c, b[idx], c.pop.region[a[idx]], c.pop.birth[a[idx]], seq[idx] + delta)
        done[idx[ok]] = True
    a, b = a[done], b[done]
    c.pop.household = c.pop.household.scatter(b, c.pop.household.gather(a))
    c.pop.house_no[b] = c.pop.house_no[a]
    base, sounds = homophone(c.pop.names.gather(a), c.rng)
    chars = pl.Series(list(ref.GIVEN_MALE + ref.GIVEN_FEMALE))
    other = chars.gather(c.rng.integers(0, len(chars), len(a)))
    twin = pl.DataFrame({"base": base, "sounds": sounds, "other": other,
                         "homophone": c.rng.random(len(a)) < 0.5}).select(
        similar=pl.col("base").str.slice(0, pl.col("base").str.len_chars() - 1) + pl.col("other"),
        base="base", sounds="sounds", homophone="homophone",
    ).select(pl.when(pl.col("homophone") | (pl.col("similar") == pl.col("base"))).then("sounds")
             .otherwise("similar")).to_series()
    _set_names(c, a, base)
    _set_names(c, b, twin)
    d = c.between(0, c.cal.last - 1, len(a))
    c.pension(a, 0, d)
    c.pension(b, 0, c.cal.last)
    v = add_variants(c, "twins_in_one_household", a, wrong_check(id_matrix(c.pop.ids.gather(a)), c.rng),
                     c.pop.names.gather(a), "death", lambda rows: wrong_check(_own(c, a, rows), c.rng))
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(d, c.rng), source=c.rng.integers(0, 3, len(a)))
    both = np.r_[a, b]
    _near(c, "twins_in_one_household", both, DI)
    _near(c, "twins_in_one_household", both, PAD)


@lru_cache(maxsize=8)
def _neighbours(codes: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Each region code's neighbours among `codes`: the codes one digit away."""
    text = [str(x) for x in codes]
    return {int(x): np.array([int(y) for y in text if sum(u != v for u, v in zip(s, y)) == 1])
            for x, s in zip(codes, text)}


def nm_common_name(c: Ctx, p: np.ndarray) -> None:
    """Two registered pensioners with one common name, born the same day, same sequence code, in regions
    whose codes differ in one digit (IDs one digit apart); a third namesake born that day, never paid,
    dies under a broken ID from yet another region."""
    half = len(p) // 2
    a, b = p[:half], p[half: 2 * half]
    neighbours = _neighbours(tuple(np.sort(c.pop.codes).tolist()))
    has = np.array([len(neighbours[int(r)]) > 0 for r in c.pop.region[a]])
    a, b = a[has], b[has]
    seq = _seq(c, a)
    done = np.zeros(len(a), dtype=bool)
    for _ in range(8):
        idx = np.flatnonzero(~done)
        if not len(idx):
            break
        region = np.array([neighbours[int(r)][k % len(neighbours[int(r)])]
                           for r, k in zip(c.pop.region[a[idx]], c.rng.integers(0, 100, len(idx)))])
        ok = _reidentify(c, b[idx], region, c.pop.birth[a[idx]], seq[idx])
        done[idx[ok]] = True
    a, b = a[done], b[done]
    c.pop.household = c.pop.household.scatter(b, pl.Series(c.pop.region[b]).cast(pl.String)
                                              + pl.Series(c.pop.house_no[b]).cast(pl.String).str.zfill(9))
    names = pl.Series(COMMON_NAMES).gather(c.rng.integers(0, len(COMMON_NAMES), len(a)))
    _set_names(c, a, names)
    _set_names(c, b, names)
    c.pension(a, 0, c.cal.last)
    c.pension(b, 0, c.cal.last)
    # The third namesake: another region (two or more digits from both), the same birth date, a broken ID.
    third = _far_region(c.pop.region[a], c.pop.region[b], c.rng, c.pop.codes)
    def make(rows: np.ndarray) -> np.ndarray:
        return wrong_check(person_id_matrix(third[rows], c.pop.birth[a[rows]], c.rng.integers(0, 1000, len(rows))), c.rng)
    v = add_variants(c, "common_name_same_birthday", a, make(np.arange(len(a))), names, "death", make)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(c.between(0, c.cal.last - 1, len(a)), c.rng),
                              source=c.rng.integers(0, 3, len(a)))
    both = np.r_[a, b]
    _near(c, "common_name_same_birthday", both, DI)
    _near(c, "common_name_same_birthday", both, PAD)
    _near(c, "common_name_same_birthday", both, "duplicate_cross_region")  # two regions, if wrongly merged


def _digits_apart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many of the six digits of region codes x and y differ (broadcasting)."""
    return sum(((x // 10 ** k) % 10 != (y // 10 ** k) % 10).astype(np.int64) for k in range(6))


def _far_region(r1: np.ndarray, r2: np.ndarray, rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    """A random region code of `codes` two or more digits away from both r1 and r2."""
    codes = np.sort(codes)[None, :]
    ok = (_digits_apart(codes, r1[:, None]) >= 2) & (_digits_apart(codes, r2[:, None]) >= 2)
    return codes[0, np.argmax(rng.random(ok.shape) * ok, axis=1)]


def nm_id_typo_birth_digits(c: Ctx, p: np.ndarray) -> None:
    """A payee under an ID one digit from the person's, same name, but the digit changes the birth date."""
    _paid_variant(c, "id_typo_in_birth_digits", p, lambda rows: birth_digit_typo(_own(c, p, rows), c.rng),
                  c.pop.names.gather(p))
    _near(c, "id_typo_in_birth_digits", p, DI)


def nm_death_id_birth_differs(c: Ctx, p: np.ndarray) -> None:
    """The pensioner is alive and paid; a death record carries the name and an ID one digit away whose
    birth date differs."""
    c.pension(p, 0, c.cal.last)
    def make(rows: np.ndarray) -> np.ndarray:
        return birth_digit_typo(_own(c, p, rows), c.rng)
    v = add_variants(c, "death_id_birth_differs", p, make(np.arange(len(p))), c.pop.names.gather(p), "death", make)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(c.between(0, c.cal.last - 1, len(p)), c.rng),
                              source=c.rng.integers(0, 3, len(p)))
    _near(c, "death_id_birth_differs", p, PAD)


def nm_namesake_died(c: Ctx, p: np.ndarray) -> None:
    """The pensioner is alive and paid; a namesake born the same day, of the same gender, registered in
    a region two or more digits away (so the valid ID differs in several digits), neither paid nor in
    the household extract, dies. A valid ID more than one typo away is another person (suspects.md)."""
    c.pension(p, 0, c.cal.last)
    region = _far_region(c.pop.region[p], c.pop.region[p], c.rng, c.pop.codes)

    def make(rows: np.ndarray) -> np.ndarray:  # a valid ID: it must be nobody else's (a collision at 1M persons)
        seq = c.rng.integers(0, 500, len(rows)) * 2 + c.pop.male[p[rows]].astype(np.int64)  # same gender digit
        return person_id_matrix(region[rows], c.pop.birth[p[rows]], seq)
    v = add_variants(c, "namesake_died", p, make(np.arange(len(p))), c.pop.names.gather(p), "death", make)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(c.between(0, c.cal.last - 1, len(p)), c.rng),
                              source=c.rng.integers(0, 3, len(p)))
    _near(c, "namesake_died", p, PAD)


def nm_death_gender_differs(c: Ctx, p: np.ndarray) -> None:
    """The pensioner is alive and paid; a death record carries the name, the birth date and the ID with
    its 17th (gender) digit changed to the other parity (the checksum then fails): gender contradicts."""
    c.pension(p, 0, c.cal.last)
    def make(rows: np.ndarray) -> np.ndarray:
        mat = _own(c, p, rows)
        digit = (mat[:, 16] - ZERO).astype(np.int64)
        mat[:, 16] = (digit + 2 * c.rng.integers(0, 5, len(rows)) + 1) % 10 + ZERO  # odd step: other parity
        return mat
    v = add_variants(c, "death_gender_differs", p, make(np.arange(len(p))), c.pop.names.gather(p), "death", make)
    c.plan.variant_deaths.add(variant=v, date=c.cal.day_in(c.between(0, c.cal.last - 1, len(p)), c.rng),
                              source=c.rng.integers(0, 3, len(p)))
    _near(c, "death_gender_differs", p, PAD)


# Kinds that file death records under broken IDs: planted at least once rather than twice, so that a
# small population keeps a realistic share of valid IDs among death records (the deaths data
# contract asks for 80 %); from 6,667 persons on every kind gets the same number of cases.
SPARSE_KINDS = frozenset({"wd_bad_check", "wd_typo_trad", "wd_garbled", "nm_twins", "nm_common_name",
                          "nm_death_id_birth_differs", "nm_death_gender_differs"})

IDENTITY_KINDS: dict[str, tuple[Callable[["Ctx", np.ndarray], None], int]] = {
    "di_substitution": (di_substitution, 1),
    "di_transposition_trad": (di_transposition_trad, 1),
    "di_bad_check_homophone": (di_bad_check_homophone, 1),
    "di_forged_valid": (di_forged_valid, 1),
    "wd_bad_check": (wd_bad_check, 1),
    "wd_typo_trad": (wd_typo_trad, 1),
    "wd_garbled": (wd_garbled, 1),
    "wd_unknown_valid": (wd_unknown_valid, 1),
    "nm_twins": (nm_twins, 2),
    "nm_common_name": (nm_common_name, 2),
    "nm_id_typo_birth_digits": (nm_id_typo_birth_digits, 1),
    "nm_death_id_birth_differs": (nm_death_id_birth_differs, 1),
    "nm_namesake_died": (nm_namesake_died, 1),
    "nm_death_gender_differs": (nm_death_gender_differs, 1),
}
