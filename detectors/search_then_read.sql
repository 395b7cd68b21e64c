-- id: search_then_read
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Navnesøk, så åpnet
-- title.en: Searched by name, then opened
-- explain.nb: {accessor} søkte opp en pasient på navn og åpnet like etter denne journalen ({times} gang(er) i perioden), uten at noen pleierelasjon forklarer det.
-- explain.en: {accessor} searched for a patient by name and opened this record right after ({times} time(s) in the period), with nothing in the patient's care to explain it.
-- param: within_minutes = 10 | a record opened this soon after a name search counts as found by the search
-- param: full_at = 2 | this few opens of the patient in the period give full strength; more opens are more like ongoing work
-- param: in_organisation = 0.5 | strength kept when the patient is in care elsewhere in the organisation (a consultation begins with a search by name too)
-- Work reaches a record through a work list: the ward's patients, the day's appointments,
-- a referral. A name search is how one finds a person one knows. A record opened right
-- after a search by name (a search event with no patient) and that no care explains is
-- the quiet form of snooping that leaves a single read, which no volume rule sees.
-- Strongest when the patient was opened only once or twice in the period; half as strong
-- when the patient is in care elsewhere in the organisation (measured on the medium
-- sample region: 14 of 26 false cases were consultations that began with a name search).
WITH searches AS (
    SELECT tenant, accessor_key, occurred_at FROM access_explained WHERE action = 'search' AND patient_id IS NULL
),
opened AS (
    SELECT tenant, accessor_key, patient_id, COUNT(*) AS times
    FROM access_explained
    WHERE patient_id IS NOT NULL
    GROUP BY tenant, accessor_key, patient_id
),
found AS (
    SELECT a.seq, a.tenant, a.accessor_key, a.patient_id, a.in_organisation_care
    FROM access_explained a
    JOIN searches s ON s.tenant = a.tenant AND s.accessor_key = a.accessor_key
    WHERE a.patient_id IS NOT NULL AND NOT a.explained AND a.patient_id <> COALESCE(a.accessor_id, '')
      AND s.occurred_at <= a.occurred_at AND s.occurred_at >= a.occurred_at - INTERVAL '${within_minutes} minutes'
    GROUP BY a.seq, a.tenant, a.accessor_key, a.patient_id, a.in_organisation_care
)
SELECT
    f.seq,
    LEAST(1.0, CAST(${full_at} AS DOUBLE) / CAST(o.times AS DOUBLE)) * CASE WHEN f.in_organisation_care THEN ${in_organisation} ELSE 1.0 END AS strength,
    o.times
FROM found f
JOIN opened o ON o.tenant = f.tenant AND o.accessor_key = f.accessor_key AND o.patient_id = f.patient_id
