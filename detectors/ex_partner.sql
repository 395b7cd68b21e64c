-- id: ex_partner
-- version: 1
-- severity: 5
-- parts: access_explained by patient_id
-- excused_by_care: false
-- title.nb: Tidligere partner
-- title.en: Former partner
-- explain.nb: Pasienten er {accessor}s tidligere ektefelle eller samboer (forholdet endte {ended}).
-- explain.en: The patient is {accessor}'s former spouse or partner (the relationship ended {ended}).
-- A partner relationship that had ended before the access, or one coded as former (FMRSPS).
SELECT
    a.seq,
    1.0 AS strength,
    COALESCE(CAST(CAST(MAX(r.valid_to) AS DATE) AS VARCHAR), 'ukjent dato') AS ended
FROM access_explained a
JOIN relation r ON r.person_id = a.accessor_id AND r.related_id = a.patient_id
WHERE r.kind = 'former_partner' OR (r.kind = 'partner' AND r.valid_to IS NOT NULL AND r.valid_to <= a.occurred_at)
GROUP BY a.seq
