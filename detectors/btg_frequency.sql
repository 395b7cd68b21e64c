-- id: btg_frequency
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Hyppig selvautorisering
-- title.en: Frequent break-the-glass
-- explain.nb: {accessor} brukte selvautorisering {count} ganger i perioden; kolleger med samme rolle i enheten gjorde det i median {peer_median} ganger (robust avvik {score}).
-- explain.en: {accessor} broke the glass {count} times in the period; colleagues with the same role in the unit did so a median {peer_median} times (robust deviation {score}).
-- param: min_count = 5 | fewer self-authorisations than this are never flagged
-- param: min_deviation = 3.0 | robust z-score (median and MAD of peers) from which a count is unusual
-- Peers are everyone who worked in the same unit and role in the period, with zero for
-- those who never broke the glass; the median absolute deviation keeps one outlier from
-- hiding another.
WITH peers AS (
    SELECT tenant, COALESCE(unit_id, '') AS unit, COALESCE(role_code, '') AS role, accessor_key,
           SUM(CASE WHEN basis = 'self_authorisation' THEN 1 ELSE 0 END) AS n
    FROM access_explained
    GROUP BY 1, 2, 3, 4
),
centre AS (
    SELECT tenant, unit, role, median(n) AS med FROM peers GROUP BY 1, 2, 3
),
spread AS (
    SELECT p.tenant, p.unit, p.role, median(abs(p.n - c.med)) AS mad
    FROM peers p JOIN centre c ON c.tenant = p.tenant AND c.unit = p.unit AND c.role = p.role
    GROUP BY 1, 2, 3
),
outliers AS (
    SELECT p.tenant, p.unit, p.role, p.accessor_key, p.n, c.med,
           (p.n - c.med) / (1.4826 * s.mad + 1.0) AS z
    FROM peers p
    JOIN centre c ON c.tenant = p.tenant AND c.unit = p.unit AND c.role = p.role
    JOIN spread s ON s.tenant = p.tenant AND s.unit = p.unit AND s.role = p.role
    WHERE p.n >= ${min_count} AND (p.n - c.med) / (1.4826 * s.mad + 1.0) >= ${min_deviation}
)
SELECT a.seq, LEAST(1.0, o.z / (2.0 * ${min_deviation})) AS strength, o.n AS count, o.med AS peer_median, round(o.z, 1) AS score
FROM access_explained a
JOIN outliers o ON o.tenant = a.tenant AND o.unit = COALESCE(a.unit_id, '') AND o.role = COALESCE(a.role_code, '') AND o.accessor_key = a.accessor_key
WHERE a.basis = 'self_authorisation'
