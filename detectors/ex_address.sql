-- id: ex_address
-- version: 2
-- severity: 3
-- parts: access_explained by patient_id
-- excused_by_care: true
-- title.nb: Tidligere adresse
-- title.en: Former address
-- explain.nb: {accessor} og pasienten har bodd på samme adresse ({address}): {how_nb}.
-- explain.en: {accessor} and the patient have lived at the same address ({address}): {how_en}.
-- The same dwelling (apartment or house) in the address history: the accessor once lived
-- where the patient lives now, the patient once lived where the accessor lives now, or they
-- lived there at the same time in the past.
-- Dwellings are matched once per distinct (accessor, patient) pair, then the times are
-- checked against each access.
WITH pairs AS (
    SELECT DISTINCT accessor_id, patient_id FROM access_explained WHERE patient_id <> accessor_id
),
shared AS (
    SELECT p.accessor_id, p.patient_id, px.address_text,
           ax.valid_from AS a_from, ax.valid_to AS a_to, px.valid_from AS p_from, px.valid_to AS p_to
    FROM pairs p
    JOIN person_address ax ON ax.person_id = p.accessor_id
    JOIN person_address px ON px.person_id = p.patient_id AND px.dwelling_key = ax.dwelling_key
    WHERE ax.valid_to IS NOT NULL OR px.valid_to IS NOT NULL
)
SELECT
    a.seq,
    1.0 AS strength,
    MIN(s.address_text) AS address,
    MIN(CASE
        WHEN s.a_to <= a.occurred_at AND (s.p_to IS NULL OR s.p_to > a.occurred_at) THEN 'den ansatte bodde tidligere der pasienten bor nå'
        WHEN s.p_to <= a.occurred_at AND (s.a_to IS NULL OR s.a_to > a.occurred_at) THEN 'pasienten bodde tidligere der den ansatte bor nå'
        ELSE 'de bodde der samtidig tidligere' END) AS how_nb,
    MIN(CASE
        WHEN s.a_to <= a.occurred_at AND (s.p_to IS NULL OR s.p_to > a.occurred_at) THEN 'the employee used to live where the patient lives now'
        WHEN s.p_to <= a.occurred_at AND (s.a_to IS NULL OR s.a_to > a.occurred_at) THEN 'the patient used to live where the employee lives now'
        ELSE 'they lived there at the same time in the past' END) AS how_en
FROM access_explained a
JOIN shared s ON s.accessor_id = a.accessor_id AND s.patient_id = a.patient_id
WHERE (s.a_to <= a.occurred_at AND (s.p_to IS NULL OR s.p_to > a.occurred_at))
   OR (s.p_to <= a.occurred_at AND (s.a_to IS NULL OR s.a_to > a.occurred_at))
   OR (s.a_to <= a.occurred_at AND s.p_to <= a.occurred_at AND s.a_from < s.p_to AND s.p_from < s.a_to)
GROUP BY a.seq
