-- id: care_ended
-- version: 2
-- severity: 3
-- parts: access_explained, care by patient_id
-- excused_by_care: true
-- title.nb: Lenge etter avsluttet behandling
-- title.en: Long after care ended
-- explain.nb: Pasienten ble behandlet av {accessor} eller enheten, men behandlingen endte {care_ended}, lenge før tilgangen.
-- explain.en: The patient was treated by {accessor} or the unit, but that care ended {care_ended}, long before the access.
-- param: min_days_after = 60 | care that ended at least this many days before counts as long ago
-- param: in_organisation = 0.5 | strength kept when the patient is in care elsewhere in the organisation now
-- Unexplained access to a former patient of the accessor or the accessor's unit. Weaker
-- when the patient is in care elsewhere in the organisation now: a former patient back on
-- another ward is likelier a consultation than a look at an old acquaintance.
SELECT
    a.seq,
    0.8 * CASE WHEN a.in_organisation_care THEN ${in_organisation} ELSE 1.0 END AS strength,
    CAST(CAST(MAX(c.valid_to) AS DATE) AS VARCHAR) AS care_ended
FROM access_explained a
JOIN care c ON c.patient_id = a.patient_id
LEFT JOIN care_participant cp ON cp.care_ref = c.care_ref AND cp.person_id = a.accessor_id
WHERE NOT a.explained
  AND c.valid_to IS NOT NULL
  AND c.valid_to < a.occurred_at - INTERVAL '${min_days_after} days'
  AND (c.unit_id = a.unit_id OR cp.person_id IS NOT NULL)
GROUP BY a.seq, a.in_organisation_care
