-- id: colleague
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Kollega
-- title.en: Colleague
-- explain.nb: Pasienten er ansatt {where_nb} som {accessor}.
-- explain.en: The patient works {where_en} as {accessor}.
-- The patient was employed by the accessor's organisation when the record was opened;
-- stronger when they work in the same unit.
SELECT
    a.seq,
    MAX(CASE WHEN e.unit_id = a.unit_id THEN 1.0 ELSE 0.6 END) AS strength,
    MIN(CASE WHEN e.unit_id = a.unit_id THEN 'i samme enhet' ELSE 'i samme virksomhet' END) AS where_nb,
    MIN(CASE WHEN e.unit_id = a.unit_id THEN 'in the same unit' ELSE 'in the same organisation' END) AS where_en
FROM access_explained a
JOIN employment e ON e.person_id = a.patient_id AND e.orgnr = a.tenant
WHERE a.patient_id <> a.accessor_id
  AND (e.valid_from IS NULL OR e.valid_from <= a.occurred_at)
  AND (e.valid_to IS NULL OR e.valid_to > a.occurred_at)
GROUP BY a.seq
