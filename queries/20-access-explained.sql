-- view: access_explained
-- materialize: true
-- Each access, and whether care evidence explains it: an encounter, episode of care or
-- appointment of the same patient, within the organisation's window before its start and
-- after its end, in which the accessor took part, or which belongs to the accessor's unit,
-- or in which a colleague of the accessor's unit took part (a care team).
-- explained_by names the closest link: participant, unit or team.
WITH links AS (
    SELECT
        a.seq,
        MIN(CASE
                WHEN cp.person_id = a.accessor_id THEN 1
                WHEN c.unit_id = a.unit_id THEN 2
                ELSE 3
            END) AS closeness
    FROM access a
    JOIN care c ON c.patient_id = a.patient_id
    JOIN org_settings s ON s.orgnr = a.tenant
    LEFT JOIN care_participant cp ON cp.care_ref = c.care_ref
    LEFT JOIN employment pe ON pe.person_id = cp.person_id AND pe.orgnr = a.tenant AND pe.unit_id = a.unit_id
    WHERE a.patient_id IS NOT NULL
      AND (c.valid_from IS NULL OR a.occurred_at >= c.valid_from - s.window_before)
      AND (c.valid_to IS NULL OR a.occurred_at <= c.valid_to + s.window_after)
      AND (cp.person_id = a.accessor_id OR c.unit_id = a.unit_id OR pe.person_id IS NOT NULL)
    GROUP BY a.seq
)
SELECT
    a.*,
    l.seq IS NOT NULL AS explained,
    CASE l.closeness WHEN 1 THEN 'participant' WHEN 2 THEN 'unit' WHEN 3 THEN 'team' END AS explained_by
FROM access a
LEFT JOIN links l ON l.seq = a.seq
