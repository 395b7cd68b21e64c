-- view: access_explained
-- materialize: true
-- dictionary: unit_from, action, basis, btg_reason, sensitivity, explained_by, explained_kind
-- param: service_share = 0.1 | a unit whose accesses go at least this share to patients in care elsewhere in the organisation works as a service (laboratory, radiology, pharmacy, float pool, home care across a municipality)
-- Each access, and what explains it: the closest care link of `access_links`
-- (participant, unit, team, duty), else one learnt from the period's own accesses (peer
-- behaviour, after explanation-based auditing, Fabbri & LeFevre 2011):
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
--                arrival_hours after the access (see access_links).
-- explained_by names the explanation; explained_kind the kind of evidence behind it;
-- in_organisation_care whether the patient is in care anywhere in the organisation;
-- on_duty whether a roster had the accessor on duty (for any unit) at the time.
-- Each unit's pattern is one aggregate per unit joined back (not a window over every
-- access, which sorts them all): how many of its accesses go to patients in care
-- elsewhere in the organisation with no closer link, and whether two different users
-- share that pattern.
WITH units AS (
    SELECT tenant, unit_id,
        SUM(CASE WHEN best IS NULL AND organisation_kind IS NOT NULL THEN 1 ELSE 0 END) AS unit_cross,
        SUM(CASE WHEN patient_id IS NOT NULL THEN 1 ELSE 0 END) AS unit_accesses,
        MIN(CASE WHEN best IS NULL AND organisation_kind IS NOT NULL THEN accessor_key END) AS first_cross_user,
        MAX(CASE WHEN best IS NULL AND organisation_kind IS NOT NULL THEN accessor_key END) AS last_cross_user
    FROM access_links
    WHERE unit_id IS NOT NULL
    GROUP BY tenant, unit_id
),
service_units AS (
    SELECT tenant, unit_id FROM units
    WHERE unit_cross >= ${service_share} * unit_accesses AND first_cross_user <> last_cross_user
),
judged AS (
    SELECT w.*, s.unit_id IS NOT NULL AS service_unit
    -- The units, a few thousand, are the hash table; every access streams past it (a
    -- RIGHT JOIN: DataFusion builds from the left side).
    FROM service_units s
    RIGHT JOIN access_links w ON s.tenant = w.tenant AND s.unit_id = w.unit_id
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
