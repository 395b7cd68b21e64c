-- id: btg_frequency
-- version: 3
-- severity: 3
-- excused_by_care: true
-- keep: counts, groups, centre
-- title.nb: Hyppig selvautorisering
-- title.en: Frequent break-the-glass
-- explain.nb: {accessor} brukte selvautorisering {count} ganger i perioden, {untypical} av dem med en begrunnelse enheten sjelden gir; {peers} kolleger {peers_nb} gjorde det i median {peer_median} ganger (robust avvik {score}).
-- explain.en: {accessor} broke the glass {count} times in the period, {untypical} of them with a reason the unit seldom gives; {peers} colleagues {peers_en} did so a median {peer_median} times (robust deviation {score}).
-- param: min_count = 5 | fewer self-authorisations than this are never flagged
-- param: min_deviation = 3.0 | robust z-score (median and MAD of peers) from which a count is unusual
-- param: min_peers = 4 | a peer group needs this many users (the accessor included) to say what is usual
-- param: typical_share = 0.2 | a reason category given in at least this share of the unit's other self-authorisations belongs to its case mix
-- Peers are everyone who worked in the same unit and role in the period, with zero for
-- those who never broke the glass; the median absolute deviation keeps one outlier from
-- hiding another. A unit and role with fewer than min_peers users says nothing (the only
-- psychologist of a ward is their own median), so the narrowest group that is large
-- enough is used: the unit and role, else the unit, else the role in the organisation.
-- The reason given is weighed against the unit's case mix: an emergency unit's staff
-- break the glass for emergencies, all of them, often; self-authorisations in a reason
-- category (access_explained.btg_reason) that the unit's other users seldom give (under
-- typical_share of theirs, or none at all) keep full strength, the typical ones half.
WITH counts AS (
    SELECT tenant, COALESCE(unit_id, '') AS unit, COALESCE(role_code, '') AS role, accessor_key,
           SUM(CASE WHEN basis = 'self_authorisation' THEN 1 ELSE 0 END) AS n
    FROM access_explained
    GROUP BY 1, 2, 3, 4
),
-- Each user's count in the groups of three levels: 1 unit and role, 2 unit, 3 role.
groups AS (
    SELECT 1 AS level, tenant, unit, role, accessor_key, n FROM counts
    UNION ALL
    SELECT 2, tenant, unit, '*', accessor_key, SUM(n) FROM counts GROUP BY tenant, unit, accessor_key
    UNION ALL
    SELECT 3, tenant, '*', role, accessor_key, SUM(n) FROM counts GROUP BY tenant, role, accessor_key
),
centre AS (
    SELECT level, tenant, unit, role, COUNT(*) AS peers, median(n) AS med FROM groups GROUP BY 1, 2, 3, 4
),
spread AS (
    SELECT g.level, g.tenant, g.unit, g.role, median(abs(g.n - c.med)) AS mad
    FROM groups g JOIN centre c ON c.level = g.level AND c.tenant = g.tenant AND c.unit = g.unit AND c.role = g.role
    GROUP BY 1, 2, 3, 4
),
-- The narrowest large-enough level for each user in each unit and role.
chosen AS (
    SELECT tenant, unit, role, accessor_key, MIN(level) AS level FROM (
        SELECT c.tenant, c.unit, c.role, c.accessor_key, 1 AS level
        FROM counts c JOIN centre ce ON ce.level = 1 AND ce.tenant = c.tenant AND ce.unit = c.unit AND ce.role = c.role
        WHERE ce.peers >= ${min_peers}
        UNION ALL
        SELECT c.tenant, c.unit, c.role, c.accessor_key, 2
        FROM counts c JOIN centre ce ON ce.level = 2 AND ce.tenant = c.tenant AND ce.unit = c.unit AND ce.role = '*'
        WHERE ce.peers >= ${min_peers}
        UNION ALL
        SELECT c.tenant, c.unit, c.role, c.accessor_key, 3
        FROM counts c JOIN centre ce ON ce.level = 3 AND ce.tenant = c.tenant AND ce.unit = '*' AND ce.role = c.role
        WHERE ce.peers >= ${min_peers}
    ) levels
    GROUP BY 1, 2, 3, 4
),
-- Each user's self-authorisations by reason category, against the unit's others'.
reasons AS (
    SELECT tenant, COALESCE(unit_id, '') AS unit, accessor_key, btg_reason, COUNT(*) AS n
    FROM access_explained
    WHERE basis = 'self_authorisation'
    GROUP BY 1, 2, 3, 4
),
untypical AS (
    SELECT r.tenant, r.unit, r.accessor_key,
           SUM(CASE WHEN t.n = u.n OR (c.n - r.n) < ${typical_share} * (t.n - u.n) THEN r.n ELSE 0 END) AS untypical
    FROM reasons r
    JOIN (SELECT tenant, unit, btg_reason, SUM(n) AS n FROM reasons GROUP BY 1, 2, 3) c
        ON c.tenant = r.tenant AND c.unit = r.unit AND c.btg_reason = r.btg_reason
    JOIN (SELECT tenant, unit, SUM(n) AS n FROM reasons GROUP BY 1, 2) t ON t.tenant = r.tenant AND t.unit = r.unit
    JOIN (SELECT tenant, unit, accessor_key, SUM(n) AS n FROM reasons GROUP BY 1, 2, 3) u
        ON u.tenant = r.tenant AND u.unit = r.unit AND u.accessor_key = r.accessor_key
    GROUP BY 1, 2, 3
),
outliers AS (
    SELECT ch.tenant, ch.unit, ch.role, ch.accessor_key, g.n, ce.med, ce.peers, ch.level,
           (g.n - ce.med) / (1.4826 * s.mad + 1.0) AS z
    FROM chosen ch
    JOIN groups g ON g.level = ch.level AND g.tenant = ch.tenant AND g.accessor_key = ch.accessor_key
        AND g.unit = CASE WHEN ch.level = 3 THEN '*' ELSE ch.unit END
        AND g.role = CASE WHEN ch.level = 2 THEN '*' ELSE ch.role END
    JOIN centre ce ON ce.level = g.level AND ce.tenant = g.tenant AND ce.unit = g.unit AND ce.role = g.role
    JOIN spread s ON s.level = g.level AND s.tenant = g.tenant AND s.unit = g.unit AND s.role = g.role
    WHERE g.n >= ${min_count} AND (g.n - ce.med) / (1.4826 * s.mad + 1.0) >= ${min_deviation}
)
SELECT
    a.seq,
    LEAST(1.0, o.z / (2.0 * ${min_deviation})) * (0.5 + 0.5 * LEAST(1.0, CAST(COALESCE(x.untypical, 0) AS DOUBLE) / o.n)) AS strength,
    o.n AS count,
    COALESCE(x.untypical, 0) AS untypical,
    o.med AS peer_median,
    o.peers - 1 AS peers,
    round(o.z, 1) AS score,
    CASE o.level WHEN 1 THEN 'med samme rolle i enheten' WHEN 2 THEN 'i enheten' ELSE 'med samme rolle i virksomheten' END AS peers_nb,
    CASE o.level WHEN 1 THEN 'with the same role in the unit' WHEN 2 THEN 'in the unit' ELSE 'with the same role in the organisation' END AS peers_en
FROM access_explained a
JOIN outliers o ON o.tenant = a.tenant AND o.unit = COALESCE(a.unit_id, '') AND o.role = COALESCE(a.role_code, '') AND o.accessor_key = a.accessor_key
LEFT JOIN untypical x ON x.tenant = o.tenant AND x.unit = o.unit AND x.accessor_key = o.accessor_key
WHERE a.basis = 'self_authorisation'
