-- view: access
-- The accesses of the review period, with the accessor resolved to a person: by the
-- person id the event carries, else through the HPR number in the practitioner context.
-- accessor_key groups one accessor's accesses even when neither is known. Only what
-- detectors use is here (access_explained holds it in memory); what reports show besides
-- is in access_details.
SELECT
    e.seq,
    e.occurred_at,
    e.tenant,
    COALESCE(e.user_person_id, p.person_id) AS accessor_id,
    COALESCE(e.user_person_id, p.person_id, 'hpr:' || e.user_hpr, 'user:' || e.user_local_id, 'name:' || e.user_name) AS accessor_key,
    e.user_hpr AS accessor_hpr,
    e.unit_id,
    e.role_code,
    e.patient_id,
    e.action,
    e.basis,
    e.sensitivity
FROM events e
LEFT JOIN (
    SELECT hpr, MIN(person_id) AS person_id FROM practitioner WHERE hpr IS NOT NULL GROUP BY hpr
) p ON p.hpr = e.user_hpr
WHERE e.date >= '${from_date}' AND e.date <= '${to_date}'
  AND e.occurred_at >= TIMESTAMP '${from}' AND e.occurred_at < TIMESTAMP '${to}'
  -- Review runs are logged in the journal by loggvakt itself; they are not accesses to review.
  AND e.source_system <> 'loggvakt'
  AND ${org_filter}
