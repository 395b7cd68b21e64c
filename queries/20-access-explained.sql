-- view: access_explained
-- materialize: true
-- Each access, and whether care evidence explains it: an encounter, episode of care or
-- appointment of the same patient, within the organisation's window before its start and
-- after its end, in which the accessor took part (participant), or which belongs to the
-- accessor's unit (unit), or in which a colleague from the accessor's unit took part
-- (team). explained_by names the closest link.
-- The links are matched by two equality joins (patient and person; patient and unit)
-- rather than one join with OR, which no engine can hash.
WITH links AS (
    SELECT c.patient_id, cp.person_id, CAST(NULL AS VARCHAR) AS unit_id, 1 AS closeness, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref
    WHERE cp.person_id IS NOT NULL
    UNION ALL
    SELECT c.patient_id, CAST(NULL AS VARCHAR), c.unit_id, 2, c.valid_from, c.valid_to
    FROM care c
    WHERE c.unit_id IS NOT NULL
    UNION ALL
    SELECT DISTINCT c.patient_id, CAST(NULL AS VARCHAR), e.unit_id, 3, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref JOIN employment e ON e.person_id = cp.person_id
    WHERE e.unit_id IS NOT NULL AND (c.unit_id IS NULL OR e.unit_id <> c.unit_id)
),
matched AS (
    SELECT a.seq, a.tenant, a.occurred_at, l.closeness, l.valid_from, l.valid_to
    FROM access a JOIN links l ON l.patient_id = a.patient_id AND l.person_id = a.accessor_id
    UNION ALL
    SELECT a.seq, a.tenant, a.occurred_at, l.closeness, l.valid_from, l.valid_to
    FROM access a JOIN links l ON l.patient_id = a.patient_id AND l.unit_id = a.unit_id
),
explained AS (
    SELECT m.seq, MIN(m.closeness) AS closeness
    FROM matched m JOIN org_settings s ON s.orgnr = m.tenant
    WHERE (m.valid_from IS NULL OR m.occurred_at >= m.valid_from - s.window_before)
      AND (m.valid_to IS NULL OR m.occurred_at <= m.valid_to + s.window_after)
    GROUP BY m.seq
)
SELECT
    a.*,
    x.seq IS NOT NULL AS explained,
    CASE x.closeness WHEN 1 THEN 'participant' WHEN 2 THEN 'unit' WHEN 3 THEN 'team' END AS explained_by
FROM access a
LEFT JOIN explained x ON x.seq = a.seq
