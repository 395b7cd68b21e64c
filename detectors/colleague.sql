-- id: colleague
-- version: 2
-- severity: 3
-- excused_by_care: true
-- title.nb: Kollega
-- title.en: Colleague
-- explain.nb: Pasienten er ansatt {where_nb} som {accessor}.
-- explain.en: The patient works {where_en} as {accessor}.
-- param: rare_share = 0.01 | an organisation whose staff are at most this share of the population makes a colleague elsewhere in it as telling as one can be (0.6)
-- The patient was employed by the accessor's organisation when the record was opened;
-- full strength when they work in the same unit. Elsewhere in the organisation it is
-- weighted by how likely a patient is to be a colleague by chance: a hospital that
-- employs one in twenty-five of its town (as the sample region's does) meets its own staff
-- as patients every day; a trust of 20 000 in a region of 3 million rarely does.
WITH staff AS (
    SELECT orgnr, COUNT(DISTINCT COALESCE(person_id, 'hpr:' || hpr)) AS employees FROM employment GROUP BY orgnr
),
population AS (SELECT COUNT(*) AS persons FROM person)
SELECT
    a.seq,
    MAX(CASE WHEN e.unit_id = a.unit_id THEN 1.0
             ELSE LEAST(0.6, ${rare_share} * CAST(p.persons AS DOUBLE) / CAST(s.employees AS DOUBLE)) END) AS strength,
    MIN(CASE WHEN e.unit_id = a.unit_id THEN 'i samme enhet' ELSE 'i samme virksomhet' END) AS where_nb,
    MIN(CASE WHEN e.unit_id = a.unit_id THEN 'in the same unit' ELSE 'in the same organisation' END) AS where_en
FROM access_explained a
JOIN employment e ON e.person_id = a.patient_id AND e.orgnr = a.tenant
JOIN staff s ON s.orgnr = a.tenant
CROSS JOIN population p
WHERE a.patient_id <> a.accessor_id
  AND (e.valid_from IS NULL OR e.valid_from <= a.occurred_at)
  AND (e.valid_to IS NULL OR e.valid_to > a.occurred_at)
GROUP BY a.seq
