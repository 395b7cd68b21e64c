-- id: celebrity
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Mange ser på samme pasient
-- title.en: Many look at one patient
-- explain.nb: Pasienten ble åpnet av {users} ulike brukere uten pleierelasjon i perioden; {accessor} var en av dem.
-- explain.en: The patient was opened by {users} different users with no care relationship in the period; {accessor} was one of them.
-- param: min_users = 5 | this many distinct unexplained users on one patient is the local-celebrity pattern
-- A patient suddenly opened by many unrelated users: someone in the news, a colleague's
-- accident, a local celebrity. Counted across organisations; only the count is shown.
WITH crowd AS (
    SELECT patient_id, COUNT(DISTINCT accessor_key) AS users
    FROM access_explained
    WHERE patient_id IS NOT NULL AND NOT explained
    GROUP BY patient_id
    HAVING COUNT(DISTINCT accessor_key) >= ${min_users}
)
SELECT a.seq, LEAST(1.0, CAST(c.users AS DOUBLE) / (2.0 * ${min_users})) + 0.3 AS strength, c.users
FROM access_explained a
JOIN crowd c ON c.patient_id = a.patient_id
WHERE NOT a.explained
