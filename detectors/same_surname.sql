-- id: same_surname
-- version: 1
-- severity: 3
-- parts: access_explained by patient_id
-- excused_by_care: true
-- title.nb: Samme etternavn
-- title.en: Same surname
-- explain.nb: {accessor} og pasienten heter begge {surname}, et navn {bearers} personer i registeret har; ingen kjent familierelasjon.
-- explain.en: {accessor} and the patient share the surname {surname}, which {bearers} people in the register have; no known family link.
-- param: rare_share = 0.002 | a surname borne by at most this share of the population counts as fully rare
-- Weighted by rarity: sharing "Hansen" says little, sharing a rare name says much.
WITH bearers AS (
    SELECT family_key, COUNT(*) AS bearers FROM person WHERE family_key IS NOT NULL AND family_key <> '' GROUP BY family_key
),
population AS (SELECT COUNT(*) AS persons FROM person)
SELECT
    a.seq,
    LEAST(1.0, ${rare_share} * CAST(p.persons AS DOUBLE) / CAST(b.bearers AS DOUBLE)) AS strength,
    ap.family AS surname,
    b.bearers
FROM access_explained a
JOIN person ap ON ap.person_id = a.accessor_id
JOIN person pp ON pp.person_id = a.patient_id AND pp.family_key = ap.family_key
JOIN bearers b ON b.family_key = ap.family_key
CROSS JOIN population p
LEFT JOIN relation r ON r.person_id = a.accessor_id AND r.related_id = a.patient_id
WHERE a.patient_id <> a.accessor_id AND r.person_id IS NULL
