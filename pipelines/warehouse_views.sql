-- Views for rules, created by pipelines.lake.create_views() (and in each run's views.sql).
--
-- Each block starts with a marker line:
--   -- part: <view> requires: <table> ...   one SELECT; the view is the UNION ALL of its parts
--                                           whose required tables exist
--   -- view: <view> requires: <relation> ... one SELECT, created when every relation exists
-- A marker ending in `[in place]` says the view projects whole extracts: a run never computes it
-- once for the rules that share it (that would copy every payment), each rule reads it in place.
-- A view none of whose parts can run is not created (rules check presence).

-- part: death_records requires: deaths
SELECT
    person_id,
    person_id_valid,
    person_id_birth_date,
    name,
    death_date,
    source,
    record_id
FROM deaths

-- part: death_records requires: household
-- A household row cancelled because of death is a police death record.
SELECT
    person_id,
    person_id_valid,
    person_id_birth_date,
    name,
    cancel_date AS death_date,
    '公安' AS source,
    'household:' || household_id AS record_id
FROM household
WHERE status = '注销' AND cancel_reason = '死亡'

-- view: person_deaths requires: death_records
-- Earliest death per canonical ID (valid or not: the same invalid ID in two extracts is the same
-- person) over all sources; `sources` and `record_ids` list every record reporting the death
-- (sorted, distinct), not only the earliest one.
SELECT
    person_id,
    min(death_date) AS death_date,
    CAST(date_trunc('month', min(death_date)) AS DATE) AS death_month,
    list_sort(list_distinct(list(source))) AS sources,
    coalesce(list_sort(list_distinct(list(record_id) FILTER (WHERE record_id IS NOT NULL))), []::VARCHAR[]) AS record_ids
FROM death_records
WHERE person_id IS NOT NULL AND death_date IS NOT NULL
GROUP BY person_id

-- part: passed_certifications requires: certifications
-- Passed proofs of life (资格认证); empty (from the part below) when no certifications extract
-- was given, so rules may read it whenever deaths are known.
SELECT person_id, cert_date, method, region_code, record_id
FROM certifications
WHERE result = '通过' AND person_id IS NOT NULL AND cert_date IS NOT NULL

-- part: passed_certifications requires: person_deaths
SELECT NULL::VARCHAR AS person_id, NULL::DATE AS cert_date, NULL::VARCHAR AS method,
       NULL::VARCHAR AS region_code, NULL::VARCHAR AS record_id
WHERE false

-- part: benefit_payments requires: pension_payments [in place]
-- Every benefit payment to a person, for rules comparing benefits across a person's IDs
-- (duplicate_identity): pensions (benefit 'pension', item = scheme) and, when loaded, subsidies
-- (benefit 'subsidy', item = program).
SELECT person_id, person_id_valid, name, payment_id, 'pension' AS benefit, scheme AS item, region_code, period, amount
FROM pension_payments

-- part: benefit_payments requires: subsidy_payments [in place]
SELECT person_id, person_id_valid, name, payment_id, 'subsidy' AS benefit, program AS item, region_code, period, amount
FROM subsidy_payments
