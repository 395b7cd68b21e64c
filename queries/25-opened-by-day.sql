-- view: opened_by_day
-- materialize: true
-- Who opened which patient on which day, once per (patient, accessor, day): whether any
-- of those accesses was explained (linked), and the accessor's person id and unit. For
-- detectors of crowds (celebrity), which ask of these sets seven times: DataFusion inlines
-- a CTE at each use, and celebrity re-aggregated the 1.5 M accesses of the large sample
-- region for each (5.3–6.9 s, DuckDB 0.6 s); held once, each use reads this instead
-- (about one row per two accesses).
SELECT
    patient_id,
    accessor_key,
    CAST(occurred_at AS DATE) AS day,
    MIN(accessor_id) AS accessor_id,
    MIN(unit_id) AS unit_id,
    MAX(CASE WHEN explained THEN 1 ELSE 0 END) AS linked
FROM access_explained
WHERE patient_id IS NOT NULL
GROUP BY patient_id, accessor_key, CAST(occurred_at AS DATE)
