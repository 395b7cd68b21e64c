-- id: ex_address
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Tidligere adresse
-- title.en: Former address
-- explain.nb: {accessor} og pasienten har bodd på samme adresse ({address}): {how_nb}.
-- explain.en: {accessor} and the patient have lived at the same address ({address}): {how_en}.
-- The same dwelling (apartment or house) in the address history: the accessor once lived
-- where the patient lives now, the patient once lived where the accessor lives now, or they
-- lived there at the same time in the past.
SELECT
    a.seq,
    1.0 AS strength,
    MIN(px.address_text) AS address,
    MIN(CASE
        WHEN ax.valid_to <= a.occurred_at AND (px.valid_to IS NULL OR px.valid_to > a.occurred_at) THEN 'den ansatte bodde tidligere der pasienten bor nå'
        WHEN px.valid_to <= a.occurred_at AND (ax.valid_to IS NULL OR ax.valid_to > a.occurred_at) THEN 'pasienten bodde tidligere der den ansatte bor nå'
        ELSE 'de bodde der samtidig tidligere' END) AS how_nb,
    MIN(CASE
        WHEN ax.valid_to <= a.occurred_at AND (px.valid_to IS NULL OR px.valid_to > a.occurred_at) THEN 'the employee used to live where the patient lives now'
        WHEN px.valid_to <= a.occurred_at AND (ax.valid_to IS NULL OR ax.valid_to > a.occurred_at) THEN 'the patient used to live where the employee lives now'
        ELSE 'they lived there at the same time in the past' END) AS how_en
FROM access_explained a
JOIN person_address ax ON ax.person_id = a.accessor_id
JOIN person_address px ON px.person_id = a.patient_id AND px.dwelling_key = ax.dwelling_key
WHERE a.patient_id <> a.accessor_id
  AND (
      (ax.valid_to <= a.occurred_at AND (px.valid_to IS NULL OR px.valid_to > a.occurred_at))
   OR (px.valid_to <= a.occurred_at AND (ax.valid_to IS NULL OR ax.valid_to > a.occurred_at))
   OR (ax.valid_to <= a.occurred_at AND px.valid_to <= a.occurred_at AND ax.valid_from < px.valid_to AND px.valid_from < ax.valid_to)
  )
GROUP BY a.seq
