-- id: unusual_volume
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Uvanlig mange pasienter
-- title.en: Unusual volume
-- explain.nb: {accessor} åpnet {patients} ulike pasienter uten pleierelasjon {when_nb}.
-- explain.en: {accessor} opened {patients} different patients with no care relationship {when_en}.
-- param: min_patients_per_hour = 10 | distinct unexplained patients in one clock hour that count as browsing
-- param: min_night_patients = 5 | distinct unexplained patients in one night (23–06 local time) that count as browsing
-- param: utc_offset_hours = 1 | local time (Norway: 1 in winter, 2 in summer)
-- Browsing: many different patients in a short time, or at night, none of them explained.
WITH unexplained AS (
    SELECT seq, tenant, accessor_key, patient_id,
           date_trunc('hour', occurred_at) AS hour,
           EXTRACT(HOUR FROM occurred_at + INTERVAL '${utc_offset_hours} hours') AS local_hour,
           CAST(occurred_at + INTERVAL '${utc_offset_hours} hours' - INTERVAL '6 hours' AS DATE) AS night
    FROM access_explained
    WHERE patient_id IS NOT NULL AND NOT explained
),
bursts AS (
    SELECT tenant, accessor_key, hour, COUNT(DISTINCT patient_id) AS patients
    FROM unexplained GROUP BY 1, 2, 3
    HAVING COUNT(DISTINCT patient_id) >= ${min_patients_per_hour}
),
nights AS (
    SELECT tenant, accessor_key, night, COUNT(DISTINCT patient_id) AS patients
    FROM unexplained WHERE local_hour >= 23 OR local_hour < 6 GROUP BY 1, 2, 3
    HAVING COUNT(DISTINCT patient_id) >= ${min_night_patients}
)
SELECT
    u.seq,
    LEAST(1.0, CAST(GREATEST(COALESCE(b.patients, 0), COALESCE(n.patients, 0)) AS DOUBLE) / (2.0 * ${min_patients_per_hour})) + 0.25 AS strength,
    GREATEST(COALESCE(b.patients, 0), COALESCE(n.patients, 0)) AS patients,
    CASE WHEN n.patients IS NOT NULL THEN 'på én natt' ELSE 'på én time' END AS when_nb,
    CASE WHEN n.patients IS NOT NULL THEN 'in one night' ELSE 'in one hour' END AS when_en
FROM unexplained u
LEFT JOIN bursts b ON b.tenant = u.tenant AND b.accessor_key = u.accessor_key AND b.hour = u.hour
LEFT JOIN nights n ON n.tenant = u.tenant AND n.accessor_key = u.accessor_key AND n.night = u.night AND (u.local_hour >= 23 OR u.local_hour < 6)
WHERE b.patients IS NOT NULL OR n.patients IS NOT NULL
