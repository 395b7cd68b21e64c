-- view: access_history
-- The accesses to patients in the lookback before the review period (settings:
-- lookback_days, 84 by default), for detectors of slow patterns: a patient opened once a
-- week for months is invisible in any single week. Not held in memory: a detector joins
-- it to the few accessor–patient pairs it asks about, and the date partitions outside the
-- lookback are never read.
SELECT e.seq, e.occurred_at, e.tenant, e.accessor_key, e.patient_id
FROM event_accessor e
WHERE e.date >= '${history_from_date}' AND e.date < '${from_date}'
  AND e.occurred_at >= TIMESTAMP '${history_from}' AND e.occurred_at < TIMESTAMP '${from}'
  AND e.patient_id IS NOT NULL
  AND ${org_filter}
