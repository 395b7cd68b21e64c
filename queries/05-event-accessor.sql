-- view: event_accessor
-- Every access event of the store with its accessor resolved to a person: by the person
-- id the event carries, else through the HPR number in the practitioner context; and the
-- HPR number from the person id when the event carries only that. accessor_key groups one
-- accessor's accesses even when neither is known. Not limited to a period: `access` takes
-- the review period from it and `access_history` the lookback before it, so both resolve
-- accessors the same way. The store's own records (review runs, searches, gaps) are not
-- accesses to review. A patient known only by an identifier from outside the Norwegian
-- registers (kind `other`: a hospital's MRN, a foreign id) cannot be looked up in the
-- population register or care records: such an access is kept out of the detectors (they
-- would call it "no care" for want of data) and counted for its organisation instead.
SELECT
    e.seq,
    e.date,
    e.occurred_at,
    e.tenant,
    COALESCE(e.user_person_id, p.person_id) AS accessor_id,
    COALESCE(e.user_person_id, p.person_id, 'hpr:' || e.user_hpr, 'user:' || e.user_local_id, 'name:' || e.user_name) AS accessor_key,
    COALESCE(e.user_hpr, q.hpr) AS accessor_hpr,
    e.unit_id,
    e.role_code,
    CASE WHEN e.patient_id_kind = 'other' THEN NULL ELSE e.patient_id END AS patient_id,
    COALESCE(e.patient_id_kind = 'other', FALSE) AS patient_unidentified,
    e.action,
    e.basis,
    -- The category of a self-authorisation's stated reason: an emergency (ETREAT,
    -- BLAALYS, NODRETT, EMER) or none given (BTG, SELVAUTORISERING, anything else).
    CASE WHEN e.basis = 'self_authorisation' THEN
        CASE WHEN upper(e.purpose_code) IN ('ETREAT', 'BLAALYS', 'NODRETT', 'EMER') THEN 'emergency' ELSE 'unstated' END
    END AS btg_reason,
    e.sensitivity
FROM events e
LEFT JOIN (
    SELECT hpr, MIN(person_id) AS person_id FROM practitioner WHERE hpr IS NOT NULL GROUP BY hpr
) p ON p.hpr = e.user_hpr
LEFT JOIN (
    SELECT person_id, MIN(hpr) AS hpr FROM practitioner WHERE person_id IS NOT NULL AND hpr IS NOT NULL GROUP BY person_id
) q ON q.person_id = e.user_person_id
WHERE e.source_system <> 'loggvakt'
