-- view: access_details
-- What reports show of an access besides what detectors use: the source's own event id,
-- the names, the purpose. Read from the segments only for the accesses a queue shows.
SELECT
    e.seq,
    e.event_id,
    e.source_system,
    e.user_name AS accessor_name,
    e.unit_name,
    e.purpose_code,
    e.channel,
    e.outcome
FROM events e
WHERE e.date >= '${from_date}' AND e.date <= '${to_date}'
