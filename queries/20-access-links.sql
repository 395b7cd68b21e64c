-- view: access_links
-- materialize: true
-- dictionary: unit_from, action, basis, btg_reason, sensitivity
-- parts: access, care by patient_id
-- keep: links, on_duty
-- param: arrival_hours = 12 | an access this many hours or less before the patient's stay in the organisation is registered is an emergency arrival (mass-casualty days: staff from other units help before anything is registered)
-- param: duty_grace_minutes = 60 | a shift in a roster covers this long before its start and after its end (handovers, staying on)
-- Each access, and the care evidence that links it to its patient. Care evidence (encounters, episodes of care,
-- appointments, orders, results, care teams) of the same patient, within the
-- organisation's window before its start and after its end:
--   participant  the accessor took part (by person id or by HPR number),
--   unit         it belongs to the accessor's unit,
--   team         a colleague from the accessor's unit took part,
--   duty         the accessor was on duty for the care's unit at the time, by a roster
--                (Schedule/Slot in `duty`): on-call doctors covering other units at
--                night, staff lent to another ward for a shift.
-- And (read by `access_explained` to explain an access no link does):
--   arrival      the patient's stay in the accessor's organisation is registered within
--                arrival_hours after the access: an emergency arrival, when staff from
--                other units help before anything is registered (a mass-casualty day).
-- best is the closest link (`closeness:kind`); organisation_kind the evidence of care
-- anywhere in the accessor's organisation, arrival_kind that of a stay registered
-- just after; on_duty whether a roster had the accessor on duty (any unit) at the time.
-- Links are matched by equality joins (patient and person; patient and HPR number;
-- patient and unit; patient and organisation) rather than one join with OR, which no
-- engine can hash.
-- Computed a share of the patients at a time (`parts:`): an access's links are all care
-- of its own patient, so the accesses and the care records of the patients of one part
-- give that part's rows. DataFusion 55's hash joins cannot spill, and in one piece a
-- Helse Sør-Øst week (25 M accesses, 3 M persons' care) needed more than 11.8 GiB.
WITH links AS (
    SELECT c.patient_id, cp.person_id AS who, CAST(NULL AS VARCHAR) AS unit_id, 1 AS closeness, c.kind, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref
    WHERE cp.person_id IS NOT NULL
    UNION ALL
    SELECT c.patient_id, 'hpr:' || cp.hpr, CAST(NULL AS VARCHAR), 1, c.kind, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref
    WHERE cp.hpr IS NOT NULL
    UNION ALL
    SELECT c.patient_id, CAST(NULL AS VARCHAR), c.unit_id, 2, c.kind, c.valid_from, c.valid_to
    FROM care c
    WHERE c.unit_id IS NOT NULL
    UNION ALL
    SELECT DISTINCT c.patient_id, CAST(NULL AS VARCHAR), e.unit_id, 3, c.kind, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref JOIN employment e ON e.person_id = cp.person_id
    WHERE e.unit_id IS NOT NULL AND (c.unit_id IS NULL OR e.unit_id <> c.unit_id)
    UNION ALL
    -- Participants known only by HPR number find their unit through it.
    SELECT DISTINCT c.patient_id, CAST(NULL AS VARCHAR), e.unit_id, 3, c.kind, c.valid_from, c.valid_to
    FROM care c JOIN care_participant cp ON cp.care_ref = c.care_ref JOIN employment e ON e.hpr = cp.hpr
    WHERE cp.person_id IS NULL AND e.unit_id IS NOT NULL AND (c.unit_id IS NULL OR e.unit_id <> c.unit_id)
),
-- The units each access's accessor was on duty for at the time (by person id, and by HPR
-- number for staff known by it alone).
on_duty AS (
    SELECT a.seq, d.unit_id
    FROM access a JOIN duty d ON d.person_id = a.accessor_id AND d.orgnr = a.tenant
    WHERE a.occurred_at >= d.valid_from - INTERVAL '${duty_grace_minutes} minutes' AND a.occurred_at <= d.valid_to + INTERVAL '${duty_grace_minutes} minutes'
    UNION ALL
    SELECT a.seq, d.unit_id
    FROM access a JOIN duty d ON d.hpr = a.accessor_hpr AND d.orgnr = a.tenant
    WHERE d.person_id IS NULL
      AND a.occurred_at >= d.valid_from - INTERVAL '${duty_grace_minutes} minutes' AND a.occurred_at <= d.valid_to + INTERVAL '${duty_grace_minutes} minutes'
),
matched AS (
    SELECT a.seq, a.tenant, a.occurred_at, l.closeness, l.kind, l.valid_from, l.valid_to
    FROM access a JOIN links l ON l.patient_id = a.patient_id AND l.who = a.accessor_id
    UNION ALL
    SELECT a.seq, a.tenant, a.occurred_at, l.closeness, l.kind, l.valid_from, l.valid_to
    FROM access a JOIN links l ON l.patient_id = a.patient_id AND l.who = 'hpr:' || a.accessor_hpr
    UNION ALL
    SELECT a.seq, a.tenant, a.occurred_at, l.closeness, l.kind, l.valid_from, l.valid_to
    FROM access a JOIN links l ON l.patient_id = a.patient_id AND l.unit_id = a.unit_id
    UNION ALL
    SELECT a.seq, a.tenant, a.occurred_at, 4, c.kind, c.valid_from, c.valid_to
    FROM access a JOIN on_duty d ON d.seq = a.seq
    JOIN care c ON c.patient_id = a.patient_id AND c.unit_id = d.unit_id
),
explained AS (
    -- The closest link, and among equally close ones the first kind by name.
    SELECT m.seq, MIN(CAST(m.closeness AS VARCHAR) || ':' || m.kind) AS best
    FROM matched m JOIN org_settings s ON s.orgnr = m.tenant
    WHERE (m.valid_from IS NULL OR m.occurred_at >= m.valid_from - s.window_before)
      AND (m.valid_to IS NULL OR m.occurred_at <= m.valid_to + s.window_after)
    GROUP BY m.seq
),
-- Care evidence of the patient anywhere in the accessor's organisation, in the window.
in_organisation AS (
    SELECT a.seq, MIN(c.kind) AS kind,
           MIN(CASE WHEN c.valid_from > a.occurred_at AND c.valid_from <= a.occurred_at + INTERVAL '${arrival_hours} hours' THEN c.kind END) AS arrival_kind
    FROM access a
    JOIN care c ON c.patient_id = a.patient_id AND c.orgnr = a.tenant
    JOIN org_settings s ON s.orgnr = a.tenant
    WHERE (c.valid_from IS NULL OR a.occurred_at >= c.valid_from - s.window_before)
      AND (c.valid_to IS NULL OR a.occurred_at <= c.valid_to + s.window_after)
    GROUP BY a.seq
)
SELECT a.*, x.best, o.kind AS organisation_kind, o.arrival_kind, d.seq IS NOT NULL AS on_duty
FROM access a
LEFT JOIN explained x ON x.seq = a.seq
LEFT JOIN in_organisation o ON o.seq = a.seq
LEFT JOIN (SELECT DISTINCT seq FROM on_duty) d ON d.seq = a.seq
