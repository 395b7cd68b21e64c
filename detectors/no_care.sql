-- id: no_care
-- version: 2
-- severity: 2
-- parts: access_explained by patient_id
-- excused_by_care: true
-- title.nb: Ingen pleierelasjon
-- title.en: No care relationship
-- explain.nb: Ingen pleierelasjon forklarer tilgangen; {accessor} åpnet denne pasientens journal {times} gang(er) over {days} dag(er).
-- explain.en: No care relationship explains the access; {accessor} opened this patient's record {times} time(s) over {days} day(s).
-- param: full_at = 4 | this many unexplained accesses to one patient give full strength
-- param: in_organisation = 0.5 | strength kept when the patient is in care elsewhere in the organisation (a consultation or on-call cover, most often)
-- One unexplained look is weak evidence (consultations leave no trace in patient
-- logistics); coming back to the same patient again and again is not. A patient in care
-- elsewhere in the accessor's organisation is likelier a consultation than one the
-- organisation does not treat at all.
WITH pairs AS (
    SELECT tenant, accessor_key, patient_id, COUNT(*) AS times, COUNT(DISTINCT CAST(occurred_at AS DATE)) AS days
    FROM access_explained
    WHERE patient_id IS NOT NULL AND NOT explained
    GROUP BY tenant, accessor_key, patient_id
)
SELECT a.seq, LEAST(1.0, CAST(p.times AS DOUBLE) / ${full_at}) * CASE WHEN a.in_organisation_care THEN ${in_organisation} ELSE 1.0 END AS strength, p.times, p.days
FROM access_explained a
JOIN pairs p ON p.tenant = a.tenant AND p.accessor_key = a.accessor_key AND p.patient_id = a.patient_id
WHERE NOT a.explained
