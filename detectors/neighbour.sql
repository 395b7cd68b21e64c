-- id: neighbour
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Nabo
-- title.en: Neighbour
-- explain.nb: {accessor} bodde i {closeness_nb} som pasienten ({patient_address}) da journalen ble åpnet.
-- explain.en: {accessor} lived in {closeness_en} as the patient ({patient_address}) when the record was opened.
-- param: max_house_distance = 2 | house numbers this close on the same street count as neighbours
-- Accessor and patient at different dwellings (households) in the same building, or in
-- nearby houses on the same street, both addresses current at the time of access.
SELECT
    a.seq,
    MAX(CASE WHEN ah.building_key = ph.building_key THEN 1.0 ELSE 0.6 END) AS strength,
    MIN(ph.address_text) AS patient_address,
    MIN(CASE WHEN ah.building_key = ph.building_key THEN 'samme bygning' ELSE 'et nabohus i samme gate' END) AS closeness_nb,
    MIN(CASE WHEN ah.building_key = ph.building_key THEN 'the same building' ELSE 'a nearby house on the same street' END) AS closeness_en
FROM access_explained a
JOIN person_address ah ON ah.person_id = a.accessor_id
JOIN person_address ph ON ph.person_id = a.patient_id AND ph.street_key = ah.street_key
WHERE a.patient_id <> a.accessor_id
  AND ah.dwelling_key <> ph.dwelling_key
  AND (ah.building_key = ph.building_key OR abs(ah.house_number - ph.house_number) <= ${max_house_distance})
  AND (ah.valid_from IS NULL OR ah.valid_from <= a.occurred_at) AND (ah.valid_to IS NULL OR ah.valid_to > a.occurred_at)
  AND (ph.valid_from IS NULL OR ph.valid_from <= a.occurred_at) AND (ph.valid_to IS NULL OR ph.valid_to > a.occurred_at)
GROUP BY a.seq
