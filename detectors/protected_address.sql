-- id: protected_address
-- version: 2
-- severity: 4
-- excused_by_care: false
-- title.nb: Sperret adresse eller skjermet pasient
-- title.en: Protected address or shielded patient
-- explain.nb: Pasienten har {what_nb}, og ingen pleierelasjon forklarer tilgangen.
-- explain.en: The patient has {what_en}, and no care relationship explains the access.
-- Patients with a protected address (v3-Confidentiality R or V on the Patient) or
-- shielded content (R or V on what was touched). Only unexplained accesses are flagged:
-- the treating team must reach these patients too. Half strength when the patient is in
-- care elsewhere in the organisation (consultations reach them as well).
-- param: in_organisation = 0.5 | strength kept when the patient is in care elsewhere in the organisation
SELECT
    a.seq,
    CASE WHEN a.in_organisation_care THEN ${in_organisation} ELSE 1.0 END AS strength,
    CASE WHEN p.protected THEN 'sperret adresse' ELSE 'skjermede opplysninger' END AS what_nb,
    CASE WHEN p.protected THEN 'a protected address' ELSE 'shielded information' END AS what_en
FROM access_explained a
LEFT JOIN person p ON p.person_id = a.patient_id
WHERE NOT a.explained
  AND a.patient_id IS NOT NULL
  AND (p.protected OR (',' || a.sensitivity || ',') LIKE '%,R,%' OR (',' || a.sensitivity || ',') LIKE '%,V,%')
