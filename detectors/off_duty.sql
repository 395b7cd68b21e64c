-- id: off_duty
-- version: 1
-- severity: 3
-- parts: access_explained, care by patient_id
-- excused_by_care: false
-- title.nb: Egen enhets pasient åpnet utenfor vakt
-- title.en: Own unit's patient opened off duty
-- explain.nb: {accessor} åpnet journalen til en pasient i egen enhet da vaktplanen ikke hadde {accessor} på vakt, og har ikke selv deltatt i pasientens behandling.
-- explain.en: {accessor} opened the record of a patient in their own unit when the roster did not have them on duty, and has not taken part in the patient's care.
-- A patient of one's own unit is explained by the unit's care, so snooping on one leaves
-- no unexplained access. Where the organisation keeps rosters (Schedule/Slot, the
-- `duty` table), an access by someone who has shifts in that unit in the period, made
-- when no shift had them on duty (access_explained.on_duty, with its grace), to a
-- patient whose care they never took part in (by person id or HPR number), is what a
-- reviewer asks about: the legitimate look from home is rare and has an answer. Staff
-- without a roster in the period are never judged by it.
WITH candidates AS (
    SELECT a.seq, a.tenant, a.accessor_key, a.accessor_id, a.accessor_hpr, a.unit_id, a.patient_id
    FROM access_explained a
    WHERE a.explained_by IN ('unit', 'team') AND NOT a.on_duty
      AND a.patient_id IS NOT NULL AND a.patient_id <> COALESCE(a.accessor_id, '')
),
-- Who has shifts for the unit they accessed from in the reviewed period.
rostered AS (
    SELECT DISTINCT c.tenant, c.accessor_key, c.unit_id
    FROM (SELECT DISTINCT tenant, accessor_key, accessor_id, unit_id FROM candidates) c
    JOIN duty d ON d.person_id = c.accessor_id AND d.orgnr = c.tenant AND d.unit_id = c.unit_id
    WHERE d.valid_from < TIMESTAMP '${to}' AND d.valid_to > TIMESTAMP '${from}'
    UNION
    SELECT DISTINCT c.tenant, c.accessor_key, c.unit_id
    FROM (SELECT DISTINCT tenant, accessor_key, accessor_hpr, unit_id FROM candidates) c
    JOIN duty d ON d.hpr = c.accessor_hpr AND d.orgnr = c.tenant AND d.unit_id = c.unit_id
    WHERE d.person_id IS NULL AND d.valid_from < TIMESTAMP '${to}' AND d.valid_to > TIMESTAMP '${from}'
),
-- Pairs where the accessor took part in the patient's care, at any time.
involved AS (
    SELECT DISTINCT c.accessor_key, c.patient_id
    FROM candidates c JOIN care k ON k.patient_id = c.patient_id JOIN care_participant p ON p.care_ref = k.care_ref AND p.person_id = c.accessor_id
    UNION
    SELECT DISTINCT c.accessor_key, c.patient_id
    FROM candidates c JOIN care k ON k.patient_id = c.patient_id JOIN care_participant p ON p.care_ref = k.care_ref AND p.hpr = c.accessor_hpr
)
SELECT c.seq, 1.0 AS strength
FROM candidates c
JOIN rostered r ON r.tenant = c.tenant AND r.accessor_key = c.accessor_key AND r.unit_id = c.unit_id
LEFT JOIN involved i ON i.accessor_key = c.accessor_key AND i.patient_id = c.patient_id
WHERE i.patient_id IS NULL
