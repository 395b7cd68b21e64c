-- view: access
-- materialize: true
-- dictionary: unit_from, action, basis, btg_reason, sensitivity
-- The accesses of the review period (accessors resolved by `event_accessor`). Kept
-- (materialised): access_links reads it five times, and engines inline views, so without it
-- the events were scanned and the roles looked up some twenty times (detect at 1.5 M
-- accesses: 24.6 s and 6.3 GiB; computed once, 16.6 s and 3.8 GiB).
-- An event that names no unit (no location agent) or no role takes them from the
-- accessor's role (PractitionerRole) at the event's organisation that was valid when the
-- record was opened, the latest begun if several were (unit_from = 'role'); without this
-- the unit's care, its colleagues and its peers cannot explain or judge the access.
-- Only what detectors use is here (access_explained is kept with it); what reports
-- show besides is in access_details.
WITH base AS (
    SELECT e.seq, e.occurred_at, e.tenant, e.accessor_id, e.accessor_key, e.accessor_hpr, e.unit_id, e.role_code,
           e.patient_id, e.patient_unidentified, e.action, e.basis, e.btg_reason, e.sensitivity
    FROM event_accessor e
    WHERE e.date >= '${from_date}' AND e.date <= '${to_date}'
      AND e.occurred_at >= TIMESTAMP '${from}' AND e.occurred_at < TIMESTAMP '${to}'
      AND ${org_filter}
),
-- Roles valid at the time of access, found by person id and by HPR number (two equality
-- joins, not one join with OR), only for events that lack a unit or a role.
roles AS (
    SELECT b.seq, b.unit_id AS event_unit, m.unit_id, m.role_code, m.valid_from
    FROM base b JOIN employment m ON m.person_id = b.accessor_id AND m.orgnr = b.tenant
    WHERE (b.unit_id IS NULL OR b.role_code IS NULL)
      AND (m.valid_from IS NULL OR m.valid_from <= b.occurred_at) AND (m.valid_to IS NULL OR m.valid_to > b.occurred_at)
    UNION ALL
    SELECT b.seq, b.unit_id, m.unit_id, m.role_code, m.valid_from
    FROM base b JOIN employment m ON m.hpr = b.accessor_hpr AND m.orgnr = b.tenant
    WHERE (b.unit_id IS NULL OR b.role_code IS NULL)
      AND (m.valid_from IS NULL OR m.valid_from <= b.occurred_at) AND (m.valid_to IS NULL OR m.valid_to > b.occurred_at)
),
role_at AS (
    SELECT seq, unit_id, role_code FROM (
        SELECT r.seq, r.unit_id, r.role_code,
               ROW_NUMBER() OVER (
                   PARTITION BY r.seq
                   -- A role in the unit the event names first (its role code), else the latest begun.
                   ORDER BY CASE WHEN r.unit_id = r.event_unit THEN 0 ELSE 1 END, r.valid_from DESC NULLS LAST, r.unit_id, r.role_code
               ) AS pick
        FROM roles r
    ) ranked
    WHERE pick = 1
)
SELECT
    b.seq,
    b.occurred_at,
    b.tenant,
    b.accessor_id,
    b.accessor_key,
    b.accessor_hpr,
    COALESCE(b.unit_id, r.unit_id) AS unit_id,
    CASE WHEN b.unit_id IS NOT NULL THEN 'event' WHEN r.unit_id IS NOT NULL THEN 'role' END AS unit_from,
    COALESCE(b.role_code, r.role_code) AS role_code,
    b.patient_id,
    b.patient_unidentified,
    b.action,
    b.basis,
    b.btg_reason,
    b.sensitivity
-- The few roles found, joined to every access: written as a RIGHT JOIN so that DataFusion
-- builds its hash table from the roles and streams the accesses past it (as a LEFT JOIN
-- it built the table from the 25 M accesses of a Helse Sør-Øst week, 4 GB that cannot
-- spill).
FROM role_at r
RIGHT JOIN base b ON r.seq = b.seq
