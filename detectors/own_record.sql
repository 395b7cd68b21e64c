-- id: own_record
-- version: 1
-- severity: 5
-- excused_by_care: false
-- title.nb: Egen journal
-- title.en: Own record
-- explain.nb: {accessor} åpnet sin egen journal.
-- explain.en: {accessor} opened their own record.
-- Staff must use the patient portal for their own record, as every patient does.
SELECT a.seq, 1.0 AS strength
FROM access_explained a
WHERE a.patient_id = a.accessor_id
