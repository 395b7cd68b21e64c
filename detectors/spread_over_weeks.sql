-- id: spread_over_weeks
-- version: 1
-- severity: 3
-- parts: access_explained by patient_id
-- excused_by_care: true
-- title.nb: Gjentatt over mange uker
-- title.en: Repeated over many weeks
-- explain.nb: {accessor} har åpnet denne pasientens journal i {weeks} ulike uker siden {first_seen}, uten at noen pleierelasjon forklarer det.
-- explain.en: {accessor} has opened this patient's record in {weeks} different weeks since {first_seen}, with no care relationship to explain it.
-- param: min_weeks = 3 | weeks with an access to the same patient, the reviewed one included, that make a slow pattern
-- A snooper who opens a patient once a week leaves one weak trace per week, which no
-- weekly review sees. This looks back over the lookback (settings: lookback_days) for
-- each accessor–patient pair that nothing explains in the reviewed period, and counts
-- the weeks in which the accessor opened the patient. Pairs with any care relationship
-- in the lookback (the accessor took part, by person id or HPR number, or the care belongs
-- to the accessor's unit) are continuing care, not a pattern to review.
WITH pairs AS (
    SELECT tenant, accessor_key, patient_id, MIN(accessor_id) AS accessor_id, MIN(accessor_hpr) AS accessor_hpr, MIN(unit_id) AS unit_id
    FROM access_explained
    WHERE patient_id IS NOT NULL AND NOT explained AND patient_id <> COALESCE(accessor_id, '')
    GROUP BY tenant, accessor_key, patient_id
),
lookback_care AS (
    SELECT c.care_ref, c.patient_id, c.unit_id
    FROM care c JOIN (SELECT DISTINCT patient_id FROM pairs) p ON p.patient_id = c.patient_id
    WHERE c.valid_to IS NULL OR c.valid_to >= TIMESTAMP '${history_from}'
),
related AS (
    SELECT p.tenant, p.accessor_key, p.patient_id
    FROM pairs p JOIN lookback_care c ON c.patient_id = p.patient_id JOIN care_participant cp ON cp.care_ref = c.care_ref AND cp.person_id = p.accessor_id
    UNION
    SELECT p.tenant, p.accessor_key, p.patient_id
    FROM pairs p JOIN lookback_care c ON c.patient_id = p.patient_id JOIN care_participant cp ON cp.care_ref = c.care_ref AND cp.hpr = p.accessor_hpr
    UNION
    SELECT p.tenant, p.accessor_key, p.patient_id
    FROM pairs p JOIN lookback_care c ON c.patient_id = p.patient_id AND c.unit_id = p.unit_id
),
earlier AS (
    SELECT p.tenant, p.accessor_key, p.patient_id,
           COUNT(DISTINCT date_trunc('week', h.occurred_at)) AS weeks,
           MIN(h.occurred_at) AS first_seen
    FROM pairs p
    JOIN access_history h ON h.tenant = p.tenant AND h.accessor_key = p.accessor_key AND h.patient_id = p.patient_id
    LEFT JOIN related r ON r.tenant = p.tenant AND r.accessor_key = p.accessor_key AND r.patient_id = p.patient_id
    WHERE r.tenant IS NULL
    GROUP BY p.tenant, p.accessor_key, p.patient_id
)
SELECT
    a.seq,
    LEAST(1.0, CAST(x.weeks + 1 AS DOUBLE) / (2.0 * ${min_weeks})) + 0.2 AS strength,
    x.weeks + 1 AS weeks,
    CAST(CAST(x.first_seen AS DATE) AS VARCHAR) AS first_seen
FROM access_explained a
JOIN earlier x ON x.tenant = a.tenant AND x.accessor_key = a.accessor_key AND x.patient_id = a.patient_id
WHERE NOT a.explained AND x.weeks + 1 >= ${min_weeks}
