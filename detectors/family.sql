-- id: family
-- version: 2
-- severity: 4
-- parts: access_explained by patient_id
-- excused_by_care: false
-- title.nb: Familie
-- title.en: Family
-- explain.nb: Pasienten er {accessor}s {relation_nb} ifølge folkeregisteret.
-- explain.en: The patient is {accessor}'s {relation_en} according to the population register.
-- param: former_strength = 0.7 | weight of a family link that has ended (former step-family, dissolved adoption)
-- A family link, current at the time of access or ended before it (former partners have
-- their own detector). Treating one's own family is not excused by a care relationship:
-- it is a conflict of interest the privacy officer should see.
SELECT
    a.seq,
    MAX(CASE WHEN r.valid_to IS NULL OR r.valid_to > a.occurred_at THEN 1.0 ELSE ${former_strength} END) AS strength,
    MIN(CASE WHEN r.valid_to IS NOT NULL AND r.valid_to <= a.occurred_at THEN 'tidligere ' ELSE '' END
        || CASE r.kind WHEN 'partner' THEN 'ektefelle eller samboer' WHEN 'parent' THEN 'forelder' WHEN 'child' THEN 'barn' WHEN 'sibling' THEN 'søsken' ELSE 'slektning' END) AS relation_nb,
    MIN(CASE WHEN r.valid_to IS NOT NULL AND r.valid_to <= a.occurred_at THEN 'former ' ELSE '' END
        || CASE r.kind WHEN 'partner' THEN 'spouse or partner' WHEN 'parent' THEN 'parent' WHEN 'child' THEN 'child' WHEN 'sibling' THEN 'sibling' ELSE 'relative' END) AS relation_en
FROM access_explained a
JOIN relation r ON r.person_id = a.accessor_id AND r.related_id = a.patient_id
WHERE (r.kind IN ('parent', 'child', 'sibling', 'family')
       OR (r.kind = 'partner' AND (r.valid_to IS NULL OR r.valid_to > a.occurred_at)))
  AND (r.valid_from IS NULL OR r.valid_from <= a.occurred_at)
GROUP BY a.seq
