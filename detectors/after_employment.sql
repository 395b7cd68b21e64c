-- id: after_employment
-- version: 1
-- severity: 4
-- excused_by_care: false
-- title.nb: Etter endt ansettelse
-- title.en: After employment ended
-- explain.nb: {accessor} sluttet i virksomheten {ended}, men åpnet journalen etterpå.
-- explain.en: {accessor} left the organisation on {ended}, but opened the record afterwards.
-- The accessor has employment records at the organisation, and every one of them had
-- ended before the access: an account that should have been closed.
WITH status AS (
    SELECT
        a.seq,
        MAX(CASE WHEN (e.valid_from IS NULL OR e.valid_from <= a.occurred_at) AND (e.valid_to IS NULL OR e.valid_to > a.occurred_at) THEN 1 ELSE 0 END) AS active,
        MAX(e.valid_to) AS ended
    FROM access_explained a
    JOIN employment e ON e.person_id = a.accessor_id AND e.orgnr = a.tenant
    WHERE a.patient_id IS NOT NULL
    GROUP BY a.seq
)
SELECT seq, 1.0 AS strength, CAST(CAST(ended AS DATE) AS VARCHAR) AS ended
FROM status
WHERE active = 0 AND ended IS NOT NULL
