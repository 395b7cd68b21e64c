//! AuditEvents as other projects publish them (FHIR R4 and R5 core examples) and as
//! published profiles shape them (IHE BALP, CH:ATC), through `loggvakt ingest`: what each is
//! stored as. Origins are in `tests/data/README.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use loggvakt_model::AccessEvent;

use crate::daemon::stored_events;
use crate::support::{text, Workspace};

/// The clinic the examples are sent for (they name no Norwegian organisation).
const CLINIC: &str = "983971636";

/// The Patient and Practitioner the core examples refer to, as a feed sends them first.
const CONTEXT: &str = concat!(
    r#"{"resourceType":"Patient","id":"example","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"13116900216"}]}"#,
    "\n",
    r#"{"resourceType":"Practitioner","id":"f001","identifier":[{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"9144889"}],"name":[{"text":"Eric van den Broek"}]}"#,
    "\n"
);

fn data(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("fixtures").map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

/// Ingests the context and then `files` into a fresh store, for `CLINIC` by default.
fn ingest(ws: &Workspace, name: &str, files: &[PathBuf]) -> (HashMap<String, AccessEvent>, String) {
    let store = ws.path(name);
    let context = ws.path(&format!("{name}-context.ndjson"));
    std::fs::write(&context, CONTEXT).expect("context written");
    let mut all = vec![context];
    all.extend_from_slice(files);
    let out = ws.ingest(&store, &all, &["--default-tenant", CLINIC]);
    assert!(matches!(out.status.code(), Some(0 | 3)), "ingest: {}", text(&out));
    let events = stored_events(ws, &store).into_iter().map(|(_, e)| (e.event_id.clone(), e)).collect();
    (events, text(&out))
}

fn summary(e: &AccessEvent) -> (&str, Option<&str>, &str, &str) {
    (e.action.as_str(), e.action_code.as_deref(), e.basis.as_str(), e.outcome.as_str())
}

#[test]
fn every_fhir_core_example_is_stored_as_published() {
    let ws = Workspace::new();
    for release in ["r4", "r5"] {
        let files = data(&format!("fhir-core/{release}"));
        let (events, out) = ingest(&ws, release, &files);
        assert_eq!(events.len(), files.len(), "{release}: every example stored ({out}): {:?}", events.keys().collect::<Vec<_>>());
        assert!(events.values().all(|e| e.tenant_orgnr == CLINIC), "{release}: the sender's default organisation");
        let e = |id: &str| events.get(id).unwrap_or_else(|| panic!("{release}: {id} stored"));
        assert_eq!(e("example-login").action, "login");
        assert_eq!(summary(e("example-logout")).0, "other", "{release}: a log-out is not a log-in");
        assert!(e("example-logout").action_code.as_deref().is_some_and(|c| c.ends_with("110123")));
        assert_eq!(e("example-disclosure").action, "disclose", "{release}: 'Disclosure' under DICOM 110106 Export");
        assert_eq!(e("example-disclosure").patient_id.as_deref(), Some("13116900216"), "{release}: Patient/example resolved by context");
        assert_eq!(e("example-media").action, "print_export", "{release}: ITI-32 media export");
        assert_eq!(e("example-pixQuery").action, "search");
        assert_eq!(e("example-search").action, "search");
        assert_eq!(e("example-rest").action, "read", "{release}: vread");
        assert_eq!(e("example-error").outcome, "denied", "{release}: outcome 8 (R4) or issue-severity error (R5)");
        let machine = e("example");
        assert_eq!((machine.action.as_str(), machine.user_local_id.as_deref()), ("other", Some("Grahame")), "{release}: no requestor: the human agent");
        if release == "r5" {
            let btg = e("example-breakglass-start");
            assert_eq!((btg.action.as_str(), btg.basis.as_str()), ("self_authorisation_grant", "self_authorisation"), "DICOM 110127 with ETREAT");
            assert_eq!(btg.user_hpr.as_deref(), Some("9144889"), "Practitioner/f001 from context");
            assert_eq!(e("example-advanced-create").action, "create");
            assert_eq!(e("example-consent-permit-authz").patient_id.as_deref(), Some("13116900216"));
        }
    }
}

#[test]
fn balp_and_ch_atc_shapes_are_stored_with_what_they_say() {
    let ws = Workspace::new();
    let (events, out) = ingest(&ws, "profiles", &data("conformance"));
    assert_eq!(events.len(), 3, "{out}");
    let read = &events["balp-read-1"];
    assert_eq!(read.tenant_orgnr, "974589095", "the organisation agent, not the default");
    assert_eq!(read.user_hpr.as_deref(), Some("9144889"), "the HPR identifier beside the unknown role");
    assert_eq!(read.user_local_id.as_deref(), Some("PractitionerRole/pr-77123"), "the unresolved reference, noted");
    assert_eq!((read.unit_id.as_deref(), read.unit_name.as_deref()), (Some("4208877"), Some("Medisinsk sengepost")), "the location agent");
    assert_eq!((read.action.as_str(), read.patient_id.as_deref()), ("read", Some("13116900216")));

    let machine = &events["balp-create-machine-1"];
    assert_eq!((machine.action.as_str(), machine.outcome.as_str()), ("create", "granted"));
    assert_eq!(machine.user_local_id.as_deref(), Some("lab-integrasjon"));
    assert_eq!(machine.channel, "integration", "an application, not a person");
    assert_eq!(machine.patient_id.as_deref(), Some("13116900216"), "the patient by entity role alone (R5)");
    assert_eq!(machine.document_id.as_deref(), Some("DiagnosticReport/svar-88"));

    let atc = &events["atc-doc-read-emer"];
    assert_eq!(summary(atc).0, "read", "ATC_DOC_READ under 110106 Export");
    assert_eq!((atc.basis.as_str(), atc.purpose_code.as_deref()), ("self_authorisation", Some("EMER")), "emergency access");
    assert_eq!(atc.patient_id_kind.as_deref(), Some("other"), "a Swiss patient id is kept, not refused");
    assert_eq!(atc.patient_id.as_deref(), Some("urn:oid:2.16.756.5.30.1.127.3.10.3|761337610411265304"));
}

#[test]
fn hl7_norway_examples_are_stored_with_their_patient_and_legal_entity() {
    let ws = Workspace::new();
    let (events, out) = ingest(&ws, "norway", &data("hl7-norway"));
    assert_eq!(events.len(), 3, "{out}");
    let first = &events["NOBasisAuditeventInstance1"];
    assert_eq!(first.patient_id.as_deref(), Some("13116900216"), "the patient from auditevent-patient-extension");
    assert_eq!(first.tenant_orgnr, "993467049", "the legal entity the department is part of, not the default");
    assert_eq!((first.user_hpr.as_deref(), first.user_person_id.as_deref()), (Some("9144897"), Some("20086600138")));
    assert_eq!((first.unit_id.as_deref(), first.unit_name.as_deref()), (Some("705592"), Some("Anestesiologi Seksjon RH")));
    assert_eq!((first.action.as_str(), first.basis.as_str()), ("read", "normal"));
    assert!(events.values().all(|e| e.patient_id.as_deref() == Some("13116900216") && e.tenant_orgnr != CLINIC), "{events:?}");
}
