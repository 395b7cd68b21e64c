-- view: access_explained
-- materialize: true
-- dictionary: unit_from, action, basis, btg_reason, sensitivity, explained_by, explained_kind
-- param: arrival_hours = 12 | an access this many hours or less before the patient's stay in the organisation is registered is an emergency arrival (mass-casualty days: staff from other units help before anything is registered)
-- param: duty_grace_minutes = 60 | a shift in a roster covers this long before its start and after its end (handovers, staying on)
-- param: service_share = 0.1 | a unit whose accesses go at least this share to patients in care elsewhere in the organisation works as a service (laboratory, radiology, pharmacy, float pool, home care across a municipality)
-- Each access, and what explains it. Care evidence (encounters, episodes of care,
-- appointments, orders, results, care teams) of the same patient, within the
-- organisation's window before its start and after its end:
--   participant  the accessor took part (by person id or by HPR number),
--   unit         it belongs to the accessor's unit,
--   team         a colleague from the accessor's unit took part,
--   duty         the accessor was on duty for the care's unit at the time, by a roster
--                (Schedule/Slot in `duty`): on-call doctors covering other units at
--                night, staff lent to another ward for a shift.
-- And, learnt from the period's own accesses (peer behaviour, after explanation-based
-- auditing, Fabbri & LeFevre 2011):
--   service      the patient is in care elsewhere in the accessor's organisation, and the
--                accessor's unit routinely opens such patients: at least service_share
--                of its accesses, by at least two of its users. Measured
--                on the messy sample region (docs/quality.md): wards send 1-5 % of their
--                accesses to patients in care elsewhere (consultations, on-call cover),
--                municipal units whose service decisions are registered by another
--                unit 14-40 %, laboratory, radiology, pharmacy and the float pool
--                35-100 %; 0.1 lies in the gap. Peers are the unit, not the unit and
--                role: most units have one or two users per role, too few to learn from.
--   arrival      the patient's stay in the accessor's organisation is registered within
--                arrival_hours after the access: an emergency arrival, when staff from
--                other units help before anything is registered (a mass-casualty day).
-- explained_by names the closest link; explained_kind the kind of evidence behind it;
-- in_organisation_care whether the patient is in care anywhere in the organisation;
-- on_duty whether a roster had the accessor on duty (for any unit) at the time.
-- Links are matched by equality joins (patient and person; patient and HPR number;
-- patient and unit; patient and organisation) rather than one join with OR, which no
-- engine can hash.
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
),
with_links AS (
    SELECT a.*, x.best, o.kind AS organisation_kind, o.arrival_kind, d.seq IS NOT NULL AS on_duty
    FROM access a
    LEFT JOIN explained x ON x.seq = a.seq
    LEFT JOIN in_organisation o ON o.seq = a.seq
    LEFT JOIN (SELECT DISTINCT seq FROM on_duty) d ON d.seq = a.seq
),
-- Each unit's pattern, over the same rows (window aggregates, so the links are computed
-- once): how many of its accesses go to patients in care elsewhere in the organisation
-- with no closer link, and whether two different users share that pattern.
with_unit AS (
    SELECT w.*,
        SUM(CASE WHEN w.best IS NULL AND w.organisation_kind IS NOT NULL THEN 1 ELSE 0 END) OVER unit_window AS unit_cross,
        SUM(CASE WHEN w.patient_id IS NOT NULL THEN 1 ELSE 0 END) OVER unit_window AS unit_accesses,
        MIN(CASE WHEN w.best IS NULL AND w.organisation_kind IS NOT NULL THEN w.accessor_key END) OVER unit_window AS first_cross_user,
        MAX(CASE WHEN w.best IS NULL AND w.organisation_kind IS NOT NULL THEN w.accessor_key END) OVER unit_window AS last_cross_user
    FROM with_links w
    WINDOW unit_window AS (PARTITION BY w.tenant, w.unit_id)
),
judged AS (
    SELECT u.*,
        (u.unit_id IS NOT NULL AND u.unit_cross >= ${service_share} * u.unit_accesses AND u.first_cross_user <> u.last_cross_user) AS service_unit
    FROM with_unit u
)
SELECT
    w.seq, w.occurred_at, w.tenant, w.accessor_id, w.accessor_key, w.accessor_hpr, w.unit_id, w.unit_from, w.role_code,
    w.patient_id, w.action, w.basis, w.btg_reason, w.sensitivity,
    -- The patient is in care somewhere in the accessor's organisation (in the window):
    -- an unexplained access to such a patient is most often a consultation or on-call
    -- cover, one to a patient the organisation does not treat at all is not.
    w.organisation_kind IS NOT NULL AS in_organisation_care,
    -- The accessor was on duty by a roster (any unit) at the time.
    w.on_duty,
    (w.best IS NOT NULL OR (w.service_unit AND w.organisation_kind IS NOT NULL) OR w.arrival_kind IS NOT NULL) AS explained,
    CASE
        WHEN w.best IS NOT NULL THEN CASE substr(w.best, 1, 1) WHEN '1' THEN 'participant' WHEN '2' THEN 'unit' WHEN '3' THEN 'team' ELSE 'duty' END
        WHEN w.service_unit AND w.organisation_kind IS NOT NULL THEN 'service'
        WHEN w.arrival_kind IS NOT NULL THEN 'arrival'
    END AS explained_by,
    CASE
        WHEN w.best IS NOT NULL THEN substr(w.best, 3)
        WHEN w.service_unit AND w.organisation_kind IS NOT NULL THEN w.organisation_kind
        WHEN w.arrival_kind IS NOT NULL THEN w.arrival_kind
    END AS explained_kind
FROM judged w
