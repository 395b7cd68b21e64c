-- id: neighbour
-- version: 2
-- severity: 3
-- parts: access_explained by patient_id
-- excused_by_care: true
-- title.nb: Nabo
-- title.en: Neighbour
-- explain.nb: {accessor} bodde i {closeness_nb} som pasienten ({patient_address}) da journalen ble åpnet.
-- explain.en: {accessor} lived in {closeness_en} as the patient ({patient_address}) when the record was opened.
-- param: max_house_distance = 2 | house numbers this close on the same street count as neighbours
-- Accessor and patient at different dwellings (households) in the same building, or in
-- nearby houses on the same street, both addresses current at the time of access.
-- Never when they may share a home: the same dwelling in any of their current addresses
-- (the staff register and the population register may both hold one), or the same house
-- where one address lacks the house letter or the apartment ("Storgata 12" and
-- "Storgata 12 B, H0201" may be one home; registers often drop the letter).
-- Addresses are matched once per distinct (accessor, patient) pair, then the times are
-- checked against each access.
WITH pairs AS (
    SELECT DISTINCT accessor_id, patient_id FROM access_explained WHERE patient_id <> accessor_id
),
addresses AS (
    SELECT p.accessor_id, p.patient_id,
           ah.house_key AS a_house, ah.building_key AS a_building, ah.dwelling_key AS a_dwelling, ah.house_number AS a_number,
           ah.valid_from AS a_from, ah.valid_to AS a_to,
           ph.house_key AS p_house, ph.building_key AS p_building, ph.dwelling_key AS p_dwelling, ph.house_number AS p_number,
           ph.address_text, ph.valid_from AS p_from, ph.valid_to AS p_to
    FROM pairs p
    JOIN person_address ah ON ah.person_id = p.accessor_id
    JOIN person_address ph ON ph.person_id = p.patient_id AND ph.street_key = ah.street_key
),
current_pairs AS (
    SELECT a.seq, d.*,
           (d.a_dwelling = d.p_dwelling
            -- the same building, one address without its apartment
            OR (d.a_building = d.p_building AND (d.a_dwelling = d.a_building OR d.p_dwelling = d.p_building))
            -- the same house number, one address with a letter and one without, and the
            -- same apartment or one without (the letter may have been dropped)
            OR (d.a_house = d.p_house AND d.a_building <> d.p_building
                AND (d.a_building = d.a_house OR d.p_building = d.p_house)
                AND (d.a_dwelling = d.a_building OR d.p_dwelling = d.p_building
                     OR replace(d.a_dwelling, d.a_building, '') = replace(d.p_dwelling, d.p_building, '')))) AS may_share_home
    FROM access_explained a
    JOIN addresses d ON d.accessor_id = a.accessor_id AND d.patient_id = a.patient_id
    WHERE (d.a_from IS NULL OR d.a_from <= a.occurred_at) AND (d.a_to IS NULL OR d.a_to > a.occurred_at)
      AND (d.p_from IS NULL OR d.p_from <= a.occurred_at) AND (d.p_to IS NULL OR d.p_to > a.occurred_at)
),
judged AS (
    SELECT
        seq,
        MAX(CASE WHEN may_share_home THEN 1 ELSE 0 END) AS shared_home,
        MAX(CASE WHEN a_building = p_building THEN 1.0 WHEN abs(a_number - p_number) <= ${max_house_distance} THEN 0.6 END) AS strength,
        MIN(CASE WHEN a_building = p_building OR abs(a_number - p_number) <= ${max_house_distance} THEN address_text END) AS patient_address
    FROM current_pairs
    GROUP BY seq
)
SELECT
    seq,
    strength,
    patient_address,
    CASE WHEN strength = 1.0 THEN 'samme bygning' ELSE 'et nabohus i samme gate' END AS closeness_nb,
    CASE WHEN strength = 1.0 THEN 'the same building' ELSE 'a nearby house on the same street' END AS closeness_en
FROM judged
WHERE shared_home = 0 AND strength IS NOT NULL
