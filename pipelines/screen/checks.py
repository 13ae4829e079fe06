"""The screening checks: set-based DuckDB SQL, one query per hold reason, over named relations.

Every check reads ``_sc_rows`` (built by :func:`build_rows`): the payroll's rows plus the rows
the full audit loaded for the same persons (and IDs linked to them) in the payroll's periods,
minus audit rows with a payroll row's payment id (the same payment). A check answers, with the
definition of its rule in ``rules/*.yaml`` applied to those rows together: which payroll rows
would be at risk (counted in ``amount_at_risk``) if paid? Those are held. Rows paying zero or a
negative amount (reversals) are never held. Each check returns ``payment_id, rule_id, facts
(JSON text), reason (one Chinese sentence)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.engine import DUCKDB, Engine

# the checks are written in the rules' dialect (DuckDB)
money, month, day, listed, as_json = DUCKDB.money_text, DUCKDB.month_text, DUCKDB.date_text, DUCKDB.list_text, \
    DUCKDB.json_text

SCHEME_ZH = ("CASE {c} WHEN '110' THEN '企业职工基本养老保险' WHEN '120' THEN '机关事业单位养老保险' "
             "WHEN '170' THEN '城乡居民基本养老保险' ELSE {c} END")
# the payroll row, as every reason starts: 张三（身份证号…）
WHO = "p.name || '（身份证号' || p.person_id || '）'"
# when the ID itself is invalid, the office checks identity first (as the rules' reasons say)
ID_NOTE = "CASE WHEN p.person_id_valid THEN '' ELSE '（该号码本身无效，校验码或出生日期不符，请先核实身份）' END"


def only_payee(ids: str) -> str:
    """SQL: the ID list ``ids`` holds no ID but the payroll row's."""
    return f"list_has_all([p.person_id], {ids})"


def other_ids(ids: str) -> str:
    """SQL: the IDs of the list ``ids`` other than the payroll row's, as text (、-separated)."""
    return f"array_to_string(list_filter({ids}, lambda i: i <> p.person_id), '、')"


# when the payee's ID is another ID of a person (identity_clusters) and his death is recorded under another
SUBJECT_NOTE = (f"CASE WHEN {only_payee('a.death_ids')} THEN '' "
                f"ELSE '与身份证号' || {other_ids('a.death_ids')} || '经比对为同一人，该人' END")
PAYMENT = f"'本次发放' || {month('p.period')} || '养老金' || {money('p.amount')} || '元（流水号' || p.payment_id || '）'"


@dataclass(frozen=True)
class Check:
    """One hold check: the rule whose definition it applies, the relations it needs, its SQL."""

    rule_id: str
    requires: tuple[str, ...]
    sql: str


def build_rows(engine: Engine, relations: tuple[str, ...], periods: list[str]) -> None:
    """Create ``_sc_rows`` (see the module doc), ``_sc_multi`` (its rows of a person paid two or more
    times in a period: the only rows a duplicate can be made of) and ``_sc_overlaps`` (the duplicate
    checks' pre-filter) in the session; ``payroll`` (paying ``periods``, 'YYYY-MM') and ``_sc_clusters``
    (:func:`pipelines.screen.links.build_clusters`) must exist."""
    engine.materialize("_sc_persons", """
        SELECT DISTINCT person_id FROM payroll
        UNION
        SELECT b.person_id FROM _sc_clusters a JOIN _sc_clusters b ON b.canonical_id = a.canonical_id
        WHERE a.person_id IN (SELECT person_id FROM payroll)""")
    # the periods as constants, so the lake's files of other months are skipped by their statistics
    months = ", ".join(f"DATE '{month}-01'" for month in periods if _MONTH.fullmatch(month)) or "NULL"
    engine.materialize("_sc_rows", f"""
        SELECT r.*, coalesce(c.canonical_id, r.person_id) AS subject
        FROM (
            SELECT w.payment_id, w.person_id, w.person_id_valid, w.name, w.scheme, w.region_code, w.period,
                   w.amount, w.pay_date, false AS in_payroll
            FROM pension_payments AS w
            WHERE w.period IN ({months})
              AND w.person_id IN (SELECT person_id FROM _sc_persons)
              AND w.payment_id NOT IN (SELECT payment_id FROM payroll)
            UNION ALL
            SELECT payment_id, person_id, person_id_valid, name, scheme, region_code, period, amount, pay_date, true
            FROM payroll) AS r
        LEFT JOIN _sc_clusters AS c ON c.person_id = r.person_id""")
    engine.materialize("_sc_multi", """
        SELECT r.* FROM _sc_rows AS r
        SEMI JOIN (SELECT subject, period FROM _sc_rows GROUP BY subject, period HAVING count(*) >= 2) AS m
             ON m.subject = r.subject AND m.period = r.period""")
    engine.materialize("_sc_overlaps", OVERLAPS)


_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


# The one cheap pre-filter of the two duplicate checks, over ``_sc_multi`` (a person — ``subject``,
# the canonical ID of his identity cluster — paid two or more times in a period): the schemes two or
# more regions pay him in a period with a payroll row among them (kind 'region', per person), and
# an employee pension meeting a resident one paid in the payroll under one ID (kind 'scheme', per ID).
OVERLAPS = """
    WITH per_scheme AS (
        SELECT subject, period, scheme, count(DISTINCT region_code) AS regions, bool_or(in_payroll) AS in_payroll
        FROM _sc_multi WHERE scheme IN ('110', '120', '170')
        GROUP BY subject, period, scheme
    )
    SELECT 'region' AS kind, subject AS who, period, list(scheme) AS schemes
    FROM per_scheme WHERE regions >= 2 AND in_payroll GROUP BY subject, period
    UNION ALL
    SELECT 'scheme', person_id, period, NULL FROM _sc_multi WHERE scheme IN ('110', '120', '170')
    GROUP BY person_id, period HAVING bool_or(scheme <> '170') AND bool_or(scheme = '170' AND in_payroll)"""


# ------------------------------------------------------------------ paid after death (+ certified after death)

_DEATH_IMPROPER = """
    after AS (
        -- rows for periods strictly after the death month (the death month itself is payable), under
        -- any ID the death counts for (``deaths.person_id``), per dead person (``deaths.subject``)
        SELECT r.*, d.subject, d.death_date, d.death_month, d.sources, d.death_ids
        FROM _sc_rows AS r JOIN deaths AS d ON d.person_id = r.person_id
        WHERE r.period > d.death_month{valid}
    ),
    improper AS (
        -- a period whose payments net to zero or less (paid and reversed) is not improper
        SELECT subject, period FROM after GROUP BY subject, period HAVING sum(amount) > 0
    )"""

PAID_AFTER_DEATH = f"""
-- As rules/paid_after_death.yaml: the IDs linked with high confidence to one person (_sc_clusters:
-- the audit's identity_clusters plus the payroll's new IDs) are one person, the cluster's canonical
-- ID (``subject``); an ID not listed there is its own person; IDs valid or not.
WITH keyed AS (
    SELECT s.person_id, coalesce(m.canonical_id, s.person_id) AS subject
    FROM _sc_persons AS s LEFT JOIN _sc_clusters AS m ON m.person_id = s.person_id
),
death_ids AS (
    -- whose death a death record reports: the person of its ID when that ID is the canonical one or
    -- is itself paid (by the audit or in the payroll); a record under a linked ID never paid is the
    -- weak match's business
    SELECT d.person_id AS death_id, coalesce(m.canonical_id, d.person_id) AS subject
    FROM person_deaths AS d LEFT JOIN _sc_clusters AS m ON m.person_id = d.person_id
    WHERE coalesce(m.canonical_id, d.person_id) IN (SELECT subject FROM keyed)
      AND (m.person_id IS NULL OR m.canonical_id = m.person_id OR m.payment_count > 0
           OR d.person_id IN (SELECT person_id FROM payroll))
),
person_death AS (
    -- the person's earliest death over those IDs
    SELECT k.subject, min(d.death_date) AS death_date, min(d.death_month) AS death_month,
           list_sort(list_distinct(flatten(list(d.sources)))) AS sources, list_sort(list(k.death_id)) AS death_ids
    FROM death_ids AS k JOIN person_deaths AS d ON d.person_id = k.death_id
    GROUP BY k.subject
),
deaths AS (
    SELECT k.person_id, k.subject, d.death_date, d.death_month, d.sources, d.death_ids
    FROM keyed AS k JOIN person_death AS d ON d.subject = k.subject
),
{_DEATH_IMPROPER.format(valid="")},
records AS (
    SELECT k.subject AS person_id,
           list_sort(list({{'death_date': r.death_date, 'source': r.source, 'record_id': r.record_id}})) AS death_records
    FROM death_records AS r JOIN death_ids AS k ON k.death_id = r.person_id
    GROUP BY k.subject
),
certified AS ({{certified}})
SELECT p.payment_id,
       CASE WHEN c.person_id IS NULL THEN 'paid_after_death' ELSE 'certified_after_death' END AS rule_id,
       {as_json('''{'death_date': a.death_date, 'death_month': strftime(a.death_month, '%Y-%m'),
                   'death_sources': a.sources, 'death_records': rec.death_records,
                   'this_person': CASE WHEN a.subject <> p.person_id THEN a.subject END,
                   'death_record_person_ids': a.death_ids,
                   'certifications_after_death': c.certifications}''')} AS facts,
       CASE WHEN c.person_id IS NULL THEN
           {WHO} || {ID_NOTE} || {SUBJECT_NOTE} || '已于' || {day('a.death_date')} || '死亡（来源：' || {listed('a.sources')} || '），'
           || {PAYMENT} || '属死亡月之后的待遇，发放即构成死亡后冒领，应暂停发放。'
       ELSE
           {WHO} || {ID_NOTE} || {SUBJECT_NOTE} || '有' || {day('a.death_date')} || '的死亡记录（来源：' || {listed('a.sources')}
           || '），但于' || {listed('c.cert_texts')} || '通过待遇资格认证；' || {PAYMENT}
           || '属死亡月之后的待遇：死亡记录与认证结果矛盾，应暂停发放，核实本人是否在世（死亡登记有误则恢复发放，冒名认证则属冒领）。'
       END AS reason
FROM payroll AS p
JOIN after AS a ON a.payment_id = p.payment_id AND a.in_payroll
JOIN improper AS i ON i.subject = a.subject AND i.period = a.period
LEFT JOIN records AS rec ON rec.person_id = a.subject
LEFT JOIN certified AS c ON c.person_id = a.subject
WHERE p.amount > 0
"""

# a passed certification dated after the person's (earliest) death date
CERTIFIED = f"""
    SELECT d.subject AS person_id,
           list_sort(list({{'record_id': c.record_id, 'cert_date': c.cert_date, 'method': c.method,
                            'region_code': c.region_code}})) AS certifications,
           list_sort(list({day('c.cert_date')} || coalesce('（' || c.method || '）', ''))) AS cert_texts
    FROM certifications AS c
    LEFT JOIN _sc_clusters AS m ON m.person_id = c.person_id
    JOIN person_death AS d ON d.subject = coalesce(m.canonical_id, c.person_id)
    WHERE c.result IN ('通过', 'pass') AND c.cert_date > d.death_date
    GROUP BY d.subject"""
NO_CERTIFICATIONS = "SELECT NULL::VARCHAR AS person_id, NULL::VARCHAR AS certifications, NULL::VARCHAR[] AS cert_texts WHERE false"

PAID_AFTER_DEATH_WEAK = f"""
WITH matched AS (
    SELECT m.* FROM death_matches AS m
    LEFT JOIN person_deaths AS exact ON exact.person_id = m.matched_person_id
    WHERE m.status = 'matched' AND exact.person_id IS NULL AND m.matched_person_id IN (SELECT person_id FROM payroll)
),
deaths AS (
    SELECT matched_person_id AS person_id, matched_person_id AS subject, min(death_date) AS death_date,
           CAST(date_trunc('month', min(death_date)) AS DATE) AS death_month,
           list_sort(list(DISTINCT source)) AS sources,
           list_sort(list(DISTINCT death_person_id)) AS death_ids,
           list_sort(list({{'death_person_id': death_person_id, 'death_id_problem': death_id_problem, 'name': death_name,
                           'birth_dates': death_births, 'death_date': death_date, 'source': source,
                           'record_id': record_id, 'name_match': name_level, 'id_relation': id_level}})) AS records
    FROM matched GROUP BY matched_person_id
),
{_DEATH_IMPROPER.format(valid=" AND r.person_id_valid")}
SELECT p.payment_id, 'paid_after_death_weak_match' AS rule_id,
       {as_json('''{'match': 'weak: death record ID invalid or unknown; name and birth date match this payee only',
                   'death_date': d.death_date, 'death_month': strftime(d.death_month, '%Y-%m'),
                   'death_sources': d.sources, 'death_records': d.records}''')} AS facts,
       {WHO} || '疑似已于' || {day('d.death_date')} || '死亡：' || {listed('d.sources')} || '的死亡记录所载身份证号'
       || {listed('d.death_ids')} || '无法直接对应，但姓名与出生日期仅与该领取人吻合；' || {PAYMENT}
       || '属死亡月之后的待遇，请核实本人是否在世后再发放（弱匹配）。' AS reason
FROM payroll AS p
JOIN after AS a ON a.payment_id = p.payment_id AND a.in_payroll
JOIN improper AS i ON i.subject = a.subject AND i.period = a.period
JOIN deaths AS d ON d.person_id = a.person_id
WHERE p.amount > 0
"""

# ------------------------------------------------------------------ imprisonment

PAID_DURING_IMPRISONMENT = f"""
WITH spells AS (
    SELECT person_id, admission_date, release_date, sentence_type,
           CAST(date_trunc('month', admission_date) AS DATE) AS admission_month,
           CAST(date_trunc('month', release_date) AS DATE) AS release_month
    FROM prisoners
    WHERE person_id IN (SELECT person_id FROM payroll)
      AND (sentence_type IS NULL OR sentence_type IN ('有期徒刑', '拘役', '无期徒刑', '死刑缓期执行'))
),
inside AS (
    -- each row once, even inside several (overlapping) spells; a spell still being served covers
    -- every period up to the later of as_of and the period itself (paying it reaches the period)
    SELECT DISTINCT r.payment_id, r.person_id, r.period, r.amount, r.in_payroll
    FROM _sc_rows AS r JOIN spells AS s ON s.person_id = r.person_id
    WHERE r.period > s.admission_month
      AND (r.period < s.release_month
           OR (s.release_date IS NULL AND r.period <= CAST(date_trunc('month', greatest($as_of, r.period)) AS DATE)))
),
improper AS (
    SELECT person_id, period FROM inside GROUP BY person_id, period HAVING sum(amount) > 0
),
spell_list AS (
    SELECT person_id,
           list_sort(list({{'admission_date': admission_date, 'release_date': release_date,
                           'sentence_type': coalesce(sentence_type, '不详')}})) AS spells,
           list_sort(list(concat(strftime(admission_date, '%Y-%m-%d'), '入监（', coalesce(sentence_type, '刑罚类型不详'), '，',
                                 CASE WHEN release_date IS NULL THEN '尚未出监'
                                      ELSE concat(strftime(release_date, '%Y-%m-%d'), '出监') END, '）'))) AS spell_texts
    FROM spells GROUP BY person_id
)
SELECT p.payment_id, 'paid_during_imprisonment' AS rule_id,
       {as_json("{'spells': sl.spells}")} AS facts,
       {WHO} || {ID_NOTE} || '服刑记录：' || {listed('sl.spell_texts')} || '；' || {PAYMENT}
       || '属服刑期间的待遇，服刑期间不应领取基本养老金，应暂停发放。' AS reason
FROM payroll AS p
JOIN inside AS x ON x.payment_id = p.payment_id AND x.in_payroll
JOIN improper AS i ON i.person_id = x.person_id AND i.period = x.period
JOIN spell_list AS sl ON sl.person_id = p.person_id
WHERE p.amount > 0
"""

# ------------------------------------------------------------------ the same scheme paid by two regions

DUPLICATE_CROSS_REGION = f"""
-- As rules/duplicate_cross_region.yaml: the IDs of one identity cluster are one person (``subject``),
-- so a person paid by two regions under two of his IDs is a cross-region duplicate too.
WITH multi AS (
    -- the pre-filter: a payroll row's person, scheme and period paid by two or more regions
    SELECT who AS subject, unnest(schemes) AS scheme, period FROM _sc_overlaps WHERE kind = 'region'
),
paid AS (
    -- net payment per person, scheme, region and period; a period reversed in full drops out
    SELECT r.subject, r.scheme, r.region_code, r.period, sum(r.amount) AS amount,
           list_sort(list(r.payment_id)) AS payment_ids, list_sort(list(DISTINCT r.person_id)) AS paid_ids,
           bool_or(NOT r.in_payroll) AS already_paid
    FROM _sc_multi AS r JOIN multi AS m ON m.subject = r.subject AND m.scheme = r.scheme AND m.period = r.period
    GROUP BY r.subject, r.scheme, r.region_code, r.period
    HAVING sum(r.amount) > 0
),
overlap AS (
    SELECT subject, scheme, period FROM paid GROUP BY subject, scheme, period HAVING count(*) >= 2
),
pairs AS (
    -- the candidates, and every ID of theirs (a person outside any cluster has his own ID only)
    SELECT DISTINCT o.subject, o.scheme, coalesce(c.person_id, o.subject) AS person_id
    FROM overlap AS o LEFT JOIN _sc_clusters AS c ON c.canonical_id = o.subject
),
audit_history AS MATERIALIZED (
    -- the candidates' payments the audit loaded (joined first: the candidates are few)
    SELECT w.payment_id, c.subject, w.scheme, w.region_code, w.period, w.amount
    FROM pension_payments AS w JOIN pairs AS c ON c.person_id = w.person_id AND c.scheme = w.scheme
),
history AS (
    -- every period each region paid (net > 0): what the audit loaded plus the payroll
    SELECT subject, scheme, region_code, period FROM (
        SELECT subject, scheme, region_code, period, amount FROM audit_history
        WHERE payment_id NOT IN (SELECT payment_id FROM payroll)
        UNION ALL
        SELECT c.subject, p.scheme, p.region_code, p.period, p.amount
        FROM payroll AS p JOIN pairs AS c ON c.person_id = p.person_id AND c.scheme = p.scheme)
    GROUP BY subject, scheme, region_code, period HAVING sum(amount) > 0
),
starts AS (
    SELECT subject, scheme, region_code, min(period) AS started FROM history GROUP BY subject, scheme, region_code
),
ranked AS (
    -- per period the region kept is the one that started earliest (tie: the lower code)
    SELECT x.*, s.started,
           list_sort(list(x.region_code) OVER (PARTITION BY x.subject, x.scheme, x.period)) AS regions_paying,
           row_number() OVER (PARTITION BY x.subject, x.scheme, x.period ORDER BY s.started, x.region_code) AS keep_rank
    FROM paid AS x
    JOIN overlap AS o ON o.subject = x.subject AND o.scheme = x.scheme AND o.period = x.period
    JOIN starts AS s ON s.subject = x.subject AND s.scheme = x.scheme AND s.region_code = x.region_code
),
kept AS (SELECT * FROM ranked WHERE keep_rank = 1)
SELECT p.payment_id, 'duplicate_cross_region' AS rule_id,
       {as_json('''{'scheme': p.scheme, 'period': strftime(p.period, '%Y-%m'), 'regions_paying': r.regions_paying,
                   'this_region_started': strftime(r.started, '%Y-%m'),
                   'kept_region': k.region_code, 'kept_region_started': strftime(k.started, '%Y-%m'),
                   'kept_payment_ids': k.payment_ids, 'kept_payment_already_paid': k.already_paid,
                   'this_person': CASE WHEN pr.subject <> p.person_id THEN pr.subject END,
                   'kept_paid_ids': k.paid_ids}''')} AS facts,
       {WHO} || {ID_NOTE} || '的' || {SCHEME_ZH.format(c='p.scheme')} || {month('p.period')} || '已由统筹区' || k.region_code
       || CASE WHEN k.already_paid THEN '发放' ELSE '在本次发放名单中发放' END || '（' || {month('k.started')} || '起领取，'
       || CASE WHEN {only_payee('k.paid_ids')} THEN ''
               ELSE '以经比对为同一人的身份证号' || {other_ids('k.paid_ids')} || '领取，' END
       || '流水号' || {listed('k.payment_ids')} || '）；统筹区' || p.region_code || {PAYMENT}
       || '属跨地区重复领取，应暂停发放。' AS reason
FROM payroll AS p
JOIN _sc_multi AS pr ON pr.payment_id = p.payment_id AND pr.in_payroll
JOIN ranked AS r ON r.subject = pr.subject AND r.scheme = p.scheme AND r.region_code = p.region_code AND r.period = p.period
JOIN kept AS k ON k.subject = pr.subject AND k.scheme = p.scheme AND k.period = p.period
WHERE r.keep_rank > 1 AND p.amount > 0
"""

# ------------------------------------------------------------------ employee and resident pension in one period

DUPLICATE_CROSS_SCHEME = f"""
WITH mixed AS (
    -- the pre-filter: a period with employee and resident rows, a resident one in the payroll
    SELECT who AS person_id, period FROM _sc_overlaps WHERE kind = 'scheme'
),
kinds AS (
    SELECT r.person_id, r.period, CASE WHEN r.scheme = '170' THEN 'resident' ELSE 'employee' END AS kind,
           sum(r.amount) AS amount, list_sort(list(r.payment_id)) AS payment_ids,
           list_sort(list(DISTINCT r.scheme)) AS schemes, list_sort(list(DISTINCT r.region_code)) AS regions,
           bool_or(NOT r.in_payroll) AS already_paid
    FROM _sc_multi AS r JOIN mixed AS m ON m.person_id = r.person_id AND m.period = r.period
    WHERE r.scheme IN ('110', '120', '170')
    GROUP BY r.person_id, r.period, CASE WHEN r.scheme = '170' THEN 'resident' ELSE 'employee' END
    HAVING sum(r.amount) > 0
),
overlap AS (SELECT person_id, period FROM kinds GROUP BY person_id, period HAVING count(*) = 2)
SELECT p.payment_id, 'duplicate_cross_scheme' AS rule_id,
       {as_json('''{'period': strftime(p.period, '%Y-%m'), 'employee_schemes': e.schemes, 'employee_regions': e.regions,
                   'employee_amount': CAST(e.amount AS DECIMAL(18,2)), 'employee_payment_ids': e.payment_ids,
                   'employee_payment_already_paid': e.already_paid}''')} AS facts,
       {WHO} || {ID_NOTE} || {month('p.period')} || '同时领取' || {listed(f"list_transform(e.schemes, lambda s: {SCHEME_ZH.format(c='s')})")}
       || '（统筹区' || {listed('e.regions')} || '，流水号' || {listed('e.payment_ids')} || '）；' || {PAYMENT}
       || '为城乡居民基本养老保险，按规定保留职工养老待遇，属跨险种重复领取，应暂停发放。' AS reason
FROM payroll AS p
JOIN overlap AS o ON o.person_id = p.person_id AND o.period = p.period
JOIN kinds AS e ON e.person_id = p.person_id AND e.period = p.period AND e.kind = 'employee'
WHERE p.scheme = '170' AND p.amount > 0
"""

# ------------------------------------------------------------------ one person paid under two IDs

DUPLICATE_IDENTITY = f"""
WITH paid AS (
    SELECT m.canonical_id, r.person_id, m.rank AS id_rank, r.period, sum(r.amount) AS amount,
           list_sort(list(r.payment_id)) AS payment_ids, bool_or(NOT r.in_payroll) AS already_paid
    FROM _sc_rows AS r JOIN _sc_clusters AS m ON m.person_id = r.person_id
    GROUP BY m.canonical_id, r.person_id, m.rank, r.period
    HAVING sum(r.amount) > 0
),
ranked AS (
    SELECT *, count(*) OVER (PARTITION BY canonical_id, period) AS ids_paying,
           min(id_rank) OVER (PARTITION BY canonical_id, period) AS kept_rank
    FROM paid
),
kept AS (SELECT * FROM ranked WHERE id_rank = kept_rank)
SELECT p.payment_id, 'duplicate_identity' AS rule_id,
       {as_json('''{'canonical_id': r.canonical_id, 'period': strftime(p.period, '%Y-%m'), 'kept_id': k.person_id,
                   'kept_payment_ids': k.payment_ids, 'kept_payment_already_paid': k.already_paid,
                   'link_score': round(c.link_score, 6), 'agreed_fields': c.link_agreed_fields,
                   'id_relation': c.link_id_level, 'name_match': c.link_name_level}''')} AS facts,
       {WHO} || '与身份证号' || k.person_id || '经比对为同一人（姓名、出生日期一致），' || {month('p.period')} || '已以该号'
       || CASE WHEN k.already_paid THEN '领取' ELSE '在本次发放名单中领取' END || '养老金（流水号' || {listed('k.payment_ids')}
       || '）；' || {PAYMENT} || '属一人多号重复领取，应暂停发放。' AS reason
FROM payroll AS p
JOIN ranked AS r ON r.person_id = p.person_id AND r.period = p.period
JOIN kept AS k ON k.canonical_id = r.canonical_id AND k.period = r.period
JOIN _sc_clusters AS c ON c.person_id = p.person_id
WHERE r.ids_paying >= 2 AND r.id_rank > r.kept_rank AND p.amount > 0
"""

# ------------------------------------------------------------------ one region paying one period twice

DUPLICATE_PAYMENT_SAME_PERIOD = f"""
WITH groups AS (
    SELECT person_id, scheme, region_code, period FROM _sc_multi
    GROUP BY person_id, scheme, region_code, period
    HAVING count(*) FILTER (WHERE amount > 0) >= 2 AND bool_or(in_payroll)
),
ranked AS (
    SELECT r.*, row_number() OVER (PARTITION BY r.person_id, r.scheme, r.region_code, r.period
                                   ORDER BY CASE WHEN r.amount > 0 THEN 0 ELSE 1 END, r.pay_date NULLS LAST,
                                            r.payment_id) AS pay_rank
    FROM _sc_multi AS r
    JOIN groups AS g ON g.person_id = r.person_id AND g.scheme = r.scheme AND g.region_code = r.region_code
                    AND g.period = r.period
),
excess AS (
    -- the first payment is due; the rest counts when the net total exceeds it
    SELECT person_id, scheme, region_code, period,
           min(payment_id) FILTER (WHERE pay_rank = 1) AS kept_payment_id,
           bool_or(NOT in_payroll) FILTER (WHERE pay_rank = 1) AS kept_already_paid
    FROM ranked GROUP BY person_id, scheme, region_code, period
    HAVING sum(amount) - sum(amount) FILTER (WHERE pay_rank = 1) > 0
)
SELECT p.payment_id, 'duplicate_payment_same_period' AS rule_id,
       {as_json('''{'scheme': p.scheme, 'period': strftime(p.period, '%Y-%m'), 'kept_payment_id': e.kept_payment_id,
                   'kept_payment_already_paid': e.kept_already_paid}''')} AS facts,
       {WHO} || '的' || {SCHEME_ZH.format(c='p.scheme')} || {month('p.period')} || '已由统筹区' || p.region_code
       || CASE WHEN e.kept_already_paid THEN '发放' ELSE '在本次发放名单中发放' END || '（流水号' || e.kept_payment_id
       || '）；' || {PAYMENT} || '属同一统筹区同期重复发放，请核实后再发放。' AS reason
FROM payroll AS p
JOIN ranked AS r ON r.payment_id = p.payment_id AND r.in_payroll
JOIN excess AS e ON e.person_id = r.person_id AND e.scheme = r.scheme AND e.region_code = r.region_code
                AND e.period = r.period
WHERE r.pay_rank > 1 AND p.amount > 0
"""


def checks(relations: tuple[str, ...]) -> list[Check]:
    """Every check, its certified-after-death part bound to whether certifications are present."""
    certified = CERTIFIED if "certifications" in relations else NO_CERTIFICATIONS
    return [
        Check("paid_after_death", ("person_deaths", "death_records"), PAID_AFTER_DEATH.replace("{certified}", certified)),
        Check("paid_after_death_weak_match", ("death_matches", "person_deaths"), PAID_AFTER_DEATH_WEAK),
        Check("paid_during_imprisonment", ("prisoners",), PAID_DURING_IMPRISONMENT),
        Check("duplicate_cross_region", (), DUPLICATE_CROSS_REGION),
        Check("duplicate_identity", (), DUPLICATE_IDENTITY),  # the audit's clusters plus the payroll's new IDs
        Check("duplicate_cross_scheme", (), DUPLICATE_CROSS_SCHEME),
        Check("duplicate_payment_same_period", (), DUPLICATE_PAYMENT_SAME_PERIOD),
    ]
