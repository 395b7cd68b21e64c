-- id: celebrity
-- version: 5
-- severity: 3
-- excused_by_care: true
-- title.nb: Mange ser på samme pasient
-- title.en: Many look at one patient
-- explain.nb: Pasienten ble åpnet av {users} ulike brukere uten noen tilknytning til pasientens behandling i perioden, mot {related} med tilknytning; {accessor} var en av dem.
-- explain.en: The patient was opened by {users} different users with no link to the patient's care in the period, against {related} with a link; {accessor} was one of them.
-- param: min_users = 5 | this many distinct unrelated users on one patient is the local-celebrity pattern
-- param: min_ratio = 0.3 | unrelated users must be at least this many per user with a link to the patient's care, so a patient that many treat is not a celebrity for the few consultants and on-call staff among them
-- param: crowd_day_users = 3 | unrelated users on one patient in one day that make a crowd that day
-- param: responder_patients = 2 | a user who opened this many patients that each drew a crowd the same day is responding to an event (a mass-casualty day), not drawn to one person
-- keep: opened, unrelated_apart
-- A patient suddenly opened by many unrelated users: someone in the news, a colleague's
-- accident, a local celebrity. Counted across organisations; only the count is shown.
-- Unrelated means: no access of theirs to the patient is explained, they never took part
-- in the patient's care, and their unit neither holds care evidence of the patient (at
-- any time) nor has a user whose access to the patient is explained (on-call cover,
-- colleagues helping). Compared with the patient's care volume: the users with a link.
-- Responders do not count: after a bus crash staff from across the hospital open several
-- victims' records hours before the admissions are registered, and that is work, not
-- curiosity; someone drawn to one person opens that one (a celebrity crowd on the same
-- day still counts).
WITH opened AS (
    SELECT patient_id, accessor_key, MIN(accessor_id) AS accessor_id, MIN(unit_id) AS unit_id, MAX(linked) AS linked
    FROM opened_by_day
    GROUP BY patient_id, accessor_key
),
patients AS (
    SELECT DISTINCT patient_id FROM opened
),
linked_units AS (
    SELECT patient_id, unit_id FROM opened WHERE linked = 1 AND unit_id IS NOT NULL
    UNION
    SELECT c.patient_id, c.unit_id FROM care c JOIN patients p ON p.patient_id = c.patient_id WHERE c.unit_id IS NOT NULL
),
participants AS (
    SELECT DISTINCT c.patient_id, cp.person_id
    FROM care c JOIN patients p ON p.patient_id = c.patient_id JOIN care_participant cp ON cp.care_ref = c.care_ref
    WHERE cp.person_id IS NOT NULL
),
unrelated AS (
    SELECT o.patient_id, o.accessor_key
    FROM opened o
    LEFT JOIN linked_units u ON u.patient_id = o.patient_id AND u.unit_id = o.unit_id
    LEFT JOIN participants pp ON pp.patient_id = o.patient_id AND pp.person_id = o.accessor_id
    WHERE o.linked = 0 AND u.patient_id IS NULL AND pp.patient_id IS NULL
),
volume AS (
    SELECT patient_id, SUM(linked) AS related FROM opened GROUP BY patient_id
),
-- The days each unrelated user opened the patient (one row per user, patient and day),
-- with how many unrelated users opened the patient that day (a crowd that day at
-- crowd_day_users), and how many of that day's crowded patients the user opened (a
-- responder to an event at responder_patients). Window aggregates over one set, because
-- DataFusion computes a CTE again at every use: with separate crowd and responder sets
-- the unrelated pairs were derived six times (5.5 s at 1.5 M accesses, DuckDB 0.5 s).
unrelated_days AS (
    SELECT d.patient_id, d.accessor_key, d.day,
           COUNT(*) OVER (PARTITION BY d.patient_id, d.day) AS day_users
    FROM opened_by_day d JOIN unrelated u ON u.patient_id = d.patient_id AND u.accessor_key = d.accessor_key
),
judged_days AS (
    SELECT patient_id, accessor_key,
           SUM(CASE WHEN day_users >= ${crowd_day_users} THEN 1 ELSE 0 END) OVER (PARTITION BY accessor_key, day) AS crowded_patients
    FROM unrelated_days
),
-- Unrelated users who opened the patient on some day they were not responding to an event.
unrelated_apart AS (
    SELECT patient_id, accessor_key
    FROM judged_days
    GROUP BY patient_id, accessor_key
    HAVING MIN(crowded_patients) < ${responder_patients}
),
crowd AS (
    SELECT u.patient_id, COUNT(*) AS users, MIN(v.related) AS related
    FROM unrelated_apart u
    JOIN volume v ON v.patient_id = u.patient_id
    GROUP BY u.patient_id
    HAVING COUNT(*) >= ${min_users} AND COUNT(*) >= ${min_ratio} * MIN(v.related)
)
SELECT a.seq, LEAST(1.0, CAST(c.users AS DOUBLE) / (2.0 * ${min_users})) + 0.3 AS strength, c.users, c.related
FROM access_explained a
JOIN crowd c ON c.patient_id = a.patient_id
JOIN unrelated_apart u ON u.patient_id = a.patient_id AND u.accessor_key = a.accessor_key
WHERE NOT a.explained
