-- id: btg_pretext
-- version: 1
-- severity: 3
-- excused_by_care: true
-- title.nb: Selvautorisering uten behandling
-- title.en: Break-the-glass with no care
-- explain.nb: {accessor} brukte selvautorisering, men ingen pleierelasjon før eller etter forklarer tilgangen.
-- explain.en: {accessor} broke the glass, but no care before or after it explains the access.
-- Self-authorisation is allowed so that an emergency is not stopped at the door, and an
-- emergency leaves care evidence: an encounter, an admission, an order, usually
-- registered minutes to hours after the access (the organisation's window_before). A
-- self-authorised access that nothing before or after explains had a reason on paper only
-- (a plausible pretext), however few times it happened. Frequency is btg_frequency's
-- concern; this one needs a single access.
SELECT a.seq, 1.0 AS strength
FROM access_explained a
WHERE a.basis = 'self_authorisation'
  AND a.patient_id IS NOT NULL
  AND a.patient_id <> a.accessor_id
  AND NOT a.explained
