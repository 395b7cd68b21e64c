//! # loggvakt-samples
//!
//! Owns synthetic input: a small Norwegian region (a hospital trust with departments,
//! municipalities, GP offices), its staff and patients with valid identifiers and
//! common Norwegian names, and a week of FHIR AuditEvents (R4 and R5, single resources and
//! batch Bundles, normal access and break-the-glass) written as NDJSON, the way a FHIR bulk
//! export writes them. Deterministic for a seed, so tests and benchmarks are repeatable.
//!
//! Must not: read or write a store; it only produces input files. Every identifier is
//! generated with valid check digits and does not name a real person or organisation on
//! purpose.

use std::fmt::Write as _;
use std::io::{self, Write};

use loggvakt_model::ids::{complete_orgnr, complete_person_id};

pub mod region;
pub use region::{Region, RegionScale};

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, 0x8000 | (b >> 48) & 0x3fff, b & 0xffff_ffff_ffff)
    }
}

/// The most common Norwegian surnames (Statistics Norway), most frequent first.
pub const SURNAMES: &[&str] = &[
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Henriksen",
    "Lund",
    "Sørensen",
    "Jakobsen",
    "Moen",
    "Gundersen",
    "Iversen",
    "Strand",
    "Solberg",
    "Svendsen",
    "Eide",
    "Knutsen",
    "Martinsen",
    "Paulsen",
    "Bakken",
    "Kristoffersen",
    "Mathisen",
    "Lie",
    "Amundsen",
    "Nguyen",
    "Rasmussen",
    "Ali",
    "Lunde",
    "Solheim",
    "Berge",
    "Moe",
    "Nygård",
    "Bakke",
    "Kristensen",
    "Fredriksen",
    "Holm",
    "Lien",
    "Hauge",
    "Christensen",
    "Andresen",
    "Nielsen",
    "Knudsen",
    "Evensen",
    "Sæther",
    "Aas",
    "Myhre",
    "Hanssen",
    "Ahmed",
    "Haugland",
    "Thomassen",
    "Sivertsen",
    "Simonsen",
    "Danielsen",
    "Berntsen",
    "Sandvik",
    "Rønning",
    "Arnesen",
    "Antonsen",
    "Næss",
    "Vik",
    "Haug",
    "Ellingsen",
    "Thorsen",
    "Edvardsen",
    "Birkeland",
    "Isaksen",
    "Gulbrandsen",
    "Ruud",
    "Aasen",
    "Strøm",
    "Myklebust",
    "Tangen",
    "Ødegård",
    "Eliassen",
    "Helland",
    "Bøe",
    "Jenssen",
    "Aune",
    "Mikkelsen",
    "Tveit",
    "Brekke",
    "Abrahamsen",
    "Madsen",
    "Gjerde",
    "Sund",
    "Fjeld",
    "Grønli",
    "Skjelbred",
    "Vollan",
];
pub const GIVEN_NAMES: &[&str] = &[
    "Jan",
    "Per",
    "Bjørn",
    "Ole",
    "Lars",
    "Kjell",
    "Knut",
    "Arne",
    "Svein",
    "Thomas",
    "Hans",
    "Geir",
    "Tor",
    "Morten",
    "Terje",
    "Odd",
    "Erik",
    "Martin",
    "Andreas",
    "Jon",
    "Anne",
    "Inger",
    "Kari",
    "Marit",
    "Ingrid",
    "Liv",
    "Eva",
    "Berit",
    "Astrid",
    "Bjørg",
    "Hilde",
    "Anna",
    "Solveig",
    "Marianne",
    "Randi",
    "Ida",
    "Nina",
    "Maria",
    "Elisabeth",
    "Kristin",
    "Silje",
    "Nora",
    "Emma",
    "Jakob",
    "Noah",
    "Sofie",
    "Ingeborg",
    "Sigrid",
    "Magnus",
    "Håkon",
];

#[derive(Debug, Clone)]
pub struct Organisation {
    pub orgnr: String,
    pub name: String,
    pub units: Vec<(String, String)>,
    pub source_system: &'static str,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub fnr: String,
    pub given: &'static str,
    pub family: &'static str,
}

#[derive(Debug, Clone)]
pub struct Employee {
    pub person: Person,
    pub hpr: String,
    pub org: usize,
    pub unit: usize,
    pub role: &'static str,
    pub role_id: String,
}

pub struct World {
    pub orgs: Vec<Organisation>,
    pub employees: Vec<Employee>,
    pub patients: Vec<Person>,
}

/// The FHIR identifier system of a person id: a D-number (first digit raised by 4, given
/// to people without a fødselsnummer) has its own.
pub fn person_id_system(id: &str) -> &'static str {
    if id.as_bytes().first().is_some_and(|d| (b'4'..=b'7').contains(d)) {
        "urn:oid:2.16.578.1.12.4.1.4.2"
    } else {
        "urn:oid:2.16.578.1.12.4.1.4.1"
    }
}

/// The D-number of the same birth date and individual number (first digit raised by 4,
/// check digits made anew); `None` where no valid check digit exists for it.
pub fn d_number(fnr: &str) -> Option<String> {
    let first = fnr.as_bytes().first().filter(|d| (b'0'..=b'3').contains(d))?;
    complete_person_id(&format!("{}{}", char::from(first + 4), fnr.get(1..9)?))
}

fn person_id(rng: &mut Rng) -> String {
    loop {
        let day = 1 + rng.below(28);
        let month = 1 + rng.below(12);
        let year = rng.below(100);
        let individual = rng.below(500);
        if let Some(id) = complete_person_id(&format!("{day:02}{month:02}{year:02}{individual:03}")) {
            return id;
        }
    }
}

fn orgnr(rng: &mut Rng) -> String {
    loop {
        if let Some(n) = complete_orgnr(&format!("9{:07}", rng.below(10_000_000))) {
            return n;
        }
    }
}

fn person(rng: &mut Rng) -> Person {
    // Surnames drawn with a falling weight, so common names are common, as in Norway.
    let rank = (rng.below(SURNAMES.len() as u64) * rng.below(SURNAMES.len() as u64)) / SURNAMES.len() as u64;
    let given = GIVEN_NAMES[rng.below(GIVEN_NAMES.len() as u64) as usize];
    Person { fnr: person_id(rng), given, family: SURNAMES[rank as usize] }
}

const ROLES: &[&str] = &["LEGE", "SYKEPLEIER", "HELSESEKRETAER", "FYSIOTERAPEUT", "PSYKOLOG"];

/// The region's organisations: a hospital trust (index 0), two municipalities (1, 2) and
/// two GP offices (3, 4), each with its units and source system.
pub(crate) fn organisations(rng: &mut Rng) -> Vec<Organisation> {
    let org_specs: [(&str, &[&str], &str); 5] = [
        ("Midtfjord sykehus HF", &["Akuttmottak", "Medisinsk klinikk", "Kirurgisk klinikk", "Barne- og ungdomsklinikken", "Psykisk helsevern", "Kvinneklinikken"], "EPJ-Midtfjord"),
        ("Nordvik kommune", &["Hjemmetjenesten", "Helsestasjon", "Legevakt"], "EPJ-Nordvik"),
        ("Sørås kommune", &["Sykehjem Solgløtt", "Hjemmesykepleie"], "EPJ-Soras"),
        ("Fjordbyen legesenter AS", &["Fastlegekontor"], "EPJ-Fjordbyen"),
        ("Åsen legekontor", &["Fastlegekontor"], "EPJ-Asen"),
    ];
    org_specs
        .iter()
        .map(|(name, units, system)| Organisation {
            orgnr: orgnr(rng),
            name: (*name).to_owned(),
            units: units.iter().map(|u| (format!("{}", 4_000_000 + rng.below(999_999)), (*u).to_owned())).collect(),
            source_system: system,
        })
        .collect()
}

impl World {
    /// A region with `employees` staff and `patients` patients.
    pub fn generate(seed: u64, employees: usize, patients: usize) -> World {
        let mut rng = Rng::new(seed);
        let orgs = organisations(&mut rng);
        let employees = (0..employees)
            .map(|i| {
                // Most staff work at the hospital, as in a real region.
                let org = if rng.chance(0.7) { 0 } else { 1 + rng.below(orgs.len() as u64 - 1) as usize };
                let unit = rng.below(orgs[org].units.len() as u64) as usize;
                Employee {
                    person: person(&mut rng),
                    hpr: format!("{}", 1_000_000 + rng.below(8_999_999)),
                    org,
                    unit,
                    role: ROLES[rng.below(ROLES.len() as u64) as usize],
                    role_id: format!("role-{i}"),
                }
            })
            .collect();
        let patients = (0..patients).map(|_| person(&mut rng)).collect();
        World { orgs, employees, patients }
    }

    /// PractitionerRole resources (with their Practitioner and Organization), as context
    /// that AuditEvents may refer to.
    pub fn write_context(&self, out: &mut impl Write) -> io::Result<()> {
        for org in &self.orgs {
            writeln!(
                out,
                r#"{{"resourceType":"Organization","id":"org-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{0}"}}],"name":"{1}"}}"#,
                org.orgnr, org.name
            )?;
        }
        for e in &self.employees {
            writeln!(
                out,
                r#"{{"resourceType":"Practitioner","id":"pr-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{0}"}},{{"system":"{4}","value":"{1}"}}],"name":[{{"family":"{2}","given":["{3}"]}}]}}"#,
                e.hpr,
                e.person.fnr,
                e.person.family,
                e.person.given,
                person_id_system(&e.person.fnr)
            )?;
            writeln!(
                out,
                r#"{{"resourceType":"PractitionerRole","id":"{0}","practitioner":{{"reference":"Practitioner/pr-{1}"}},"organization":{{"reference":"Organization/org-{2}"}},"code":[{{"coding":[{{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"{3}"}}]}}]}}"#,
                e.role_id, e.hpr, self.orgs[e.org].orgnr, e.role
            )?;
        }
        Ok(())
    }
}

/// How the generated events look.
#[derive(Debug, Clone)]
pub struct EventOptions {
    pub seed: u64,
    pub events: u64,
    /// Start of the week the accesses fall in, UTC seconds.
    pub week_start: i64,
    /// Share of lines that are batch Bundles of 10 events instead of single AuditEvents.
    pub bundle_share: f64,
    /// Share of events in R5 shape.
    pub r5_share: f64,
    /// Share of events that name the user only through a PractitionerRole reference
    /// (which `World::write_context` supplies) instead of carrying the employer's orgnr.
    pub role_reference_share: f64,
}

impl Default for EventOptions {
    fn default() -> Self {
        EventOptions { seed: 1, events: 10_000, week_start: 1_794_700_800, bundle_share: 0.05, r5_share: 0.3, role_reference_share: 0.1 }
    }
}

/// One access to generate: who, whom, when, and how.
struct Access {
    employee: usize,
    patient: Option<usize>,
    second: i64,
    document: u64,
    self_authorised: bool,
}

/// A care episode: a patient treated by a small team in one organisation, who open the
/// record in bursts over hours or days. This is what makes most accesses legitimate, and
/// what makes access logs compress: the same patient and users recur.
struct Episode {
    patient: usize,
    team: Vec<usize>,
    next: i64,
    remaining: u32,
    documents: [u64; 3],
    emergency: bool,
}

fn new_episode(world: &World, by_org: &[Vec<usize>], rng: &mut Rng, start: i64) -> Episode {
    let org = if rng.chance(0.7) { 0 } else { 1 + rng.below(world.orgs.len() as u64 - 1) as usize };
    let staff = &by_org[org];
    let lead = staff[rng.below(staff.len() as u64) as usize];
    let unit = world.employees[lead].unit;
    let same_unit: Vec<usize> = staff.iter().copied().filter(|&e| world.employees[e].unit == unit).take(64).collect();
    let team = (0..2 + rng.below(6)).map(|_| same_unit[rng.below(same_unit.len() as u64) as usize]).chain([lead]).collect();
    Episode {
        patient: rng.below(world.patients.len() as u64) as usize,
        team,
        next: start,
        remaining: 3 + rng.below(40) as u32,
        documents: [rng.below(10_000_000), rng.below(10_000_000), rng.below(10_000_000)],
        emergency: rng.chance(0.03),
    }
}

/// Writes `options.events` AuditEvents as NDJSON, in time order as a source exports them,
/// and returns how many lines it wrote.
pub fn write_events(world: &World, options: &EventOptions, out: &mut impl Write) -> io::Result<u64> {
    let mut rng = Rng::new(options.seed.wrapping_mul(31).wrapping_add(7));
    let mut by_org: Vec<Vec<usize>> = vec![Vec::new(); world.orgs.len()];
    for (i, e) in world.employees.iter().enumerate() {
        by_org[e.org].push(i);
    }
    for (org, staff) in by_org.iter_mut().enumerate() {
        if staff.is_empty() {
            staff.push(org % world.employees.len().max(1));
        }
    }
    let week = 7 * 24 * 3600;
    // Enough overlapping episodes that the accesses fill the week evenly.
    let concurrent = ((options.events / 20).max(1) as f64 * 12.0 * 3600.0 / week as f64).ceil().max(1.0) as usize;
    let mut episodes: Vec<Episode> = (0..concurrent)
        .map(|_| {
            let start = options.week_start + rng.below(12 * 3600) as i64;
            new_episode(world, &by_org, &mut rng, start)
        })
        .collect();
    // Episodes by their next access time, earliest first.
    let mut due: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> = episodes.iter().enumerate().map(|(i, e)| std::cmp::Reverse((e.next, i))).collect();
    let mut written = 0u64;
    let mut lines = 0u64;
    let mut buf = String::with_capacity(64 * 1024);
    let mut next_access = |rng: &mut Rng, episodes: &mut Vec<Episode>| -> Access {
        let std::cmp::Reverse((_, i)) = due.pop().unwrap_or(std::cmp::Reverse((0, 0)));
        let ep = &mut episodes[i];
        let second = ep.next.min(options.week_start + week - 1);
        let employee = ep.team[rng.below(ep.team.len() as u64) as usize];
        let access = if rng.chance(0.02) {
            // A log-in: no patient.
            Access { employee, patient: None, second, document: 0, self_authorised: false }
        } else {
            Access { employee, patient: Some(ep.patient), second, document: ep.documents[rng.below(3) as usize], self_authorised: ep.emergency && rng.chance(0.5) }
        };
        let gap = if rng.chance(0.8) { 900 } else { 6 * 3600 };
        ep.next += 30 + rng.below(gap) as i64;
        ep.remaining = ep.remaining.saturating_sub(1);
        if ep.remaining == 0 || ep.next >= options.week_start + week {
            let start = (second + rng.below(1800) as i64).min(options.week_start + week - 1);
            *ep = new_episode(world, &by_org, rng, start);
        }
        due.push(std::cmp::Reverse((ep.next, i)));
        access
    };
    while written < options.events {
        buf.clear();
        let remaining = options.events - written;
        if remaining >= 10 && rng.chance(options.bundle_share) {
            buf.push_str(r#"{"resourceType":"Bundle","type":"batch","entry":["#);
            for i in 0..10 {
                if i > 0 {
                    buf.push(',');
                }
                buf.push_str(r#"{"resource":"#);
                let access = next_access(&mut rng, &mut episodes);
                audit_event(world, options, &access, &mut rng, &mut buf);
                buf.push_str(r#","request":{"method":"POST","url":"AuditEvent"}}"#);
            }
            buf.push_str("]}");
            written += 10;
        } else {
            let access = next_access(&mut rng, &mut episodes);
            audit_event(world, options, &access, &mut rng, &mut buf);
            written += 1;
        }
        buf.push('\n');
        out.write_all(buf.as_bytes())?;
        lines += 1;
    }
    Ok(lines)
}

fn instant(seconds: i64, micros: u64) -> String {
    let t = chrono::DateTime::from_timestamp(seconds, (micros * 1000) as u32).unwrap_or_default();
    // Norwegian sources write local time with its offset; November is UTC+01:00.
    (t + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%.3f+01:00").to_string()
}

fn audit_event(world: &World, options: &EventOptions, access: &Access, rng: &mut Rng, buf: &mut String) {
    let e = &world.employees[access.employee];
    let patient = access.patient.map(|p| world.patients[p].fnr.as_str());
    let style = EventStyle { r5_share: options.r5_share, role_reference_share: options.role_reference_share, unit_missing_share: 0.0 };
    let kind = if access.self_authorised { AccessKind::BreakGlass } else { AccessKind::Normal };
    write_audit_event(&world.orgs[e.org], e, patient, access.second, access.document, kind, &style, rng, buf);
}

/// How generated AuditEvents are spelled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventStyle {
    pub r5_share: f64,
    pub role_reference_share: f64,
    /// Share of events whose user agent has no location (no unit), as many real feeds send.
    pub unit_missing_share: f64,
}

/// How a generated access was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessKind {
    Normal,
    /// Self-authorised (break the glass), with a reason.
    BreakGlass,
    /// A search by name, with no patient (yet): what precedes opening a record that is on
    /// no work list.
    NameSearch,
}

/// Writes one AuditEvent of `e` opening `patient` (a log-in when `None`, unless it is a
/// name search) and returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_audit_event(
    org: &Organisation,
    e: &Employee,
    patient: Option<&str>,
    second: i64,
    document: u64,
    kind: AccessKind,
    style: &EventStyle,
    rng: &mut Rng,
    buf: &mut String,
) -> String {
    let (unit_id, unit_name) = &org.units[e.unit];
    let r5 = rng.chance(style.r5_share);
    let search = kind == AccessKind::NameSearch;
    let login = patient.is_none() && !search;
    let btg = kind == AccessKind::BreakGlass;
    let by_role = rng.chance(style.role_reference_share);
    // Drawn only when asked for, so streams without this confounder stay as they were.
    let location = if style.unit_missing_share > 0.0 && rng.chance(style.unit_missing_share) {
        String::new()
    } else {
        format!(r#","location":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{unit_id}"}},"display":"{unit_name}"}}"#)
    };
    let at = instant(second, rng.below(1000) * 1000);
    let recorded = instant(second + 1, rng.below(1000) * 1000);
    let (letter, subtype, dicom) = if login {
        ("E", "login", ("110114", "User Authentication"))
    } else if search {
        ("E", "search-type", ("110112", "Query"))
    } else {
        match rng.below(10) {
            0 => ("E", "search-type", ("rest", "RESTful Operation")),
            1 => ("U", "update", ("rest", "RESTful Operation")),
            2 => ("C", "create", ("rest", "RESTful Operation")),
            _ => ("R", "read", ("rest", "RESTful Operation")),
        }
    };
    let event_id = rng.uuid();
    let _ = write!(buf, r#"{{"resourceType":"AuditEvent","id":"{event_id}""#);
    if r5 {
        let _ = write!(
            buf,
            r#","category":[{{"coding":[{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"{}","display":"{}"}}]}}],"code":{{"coding":[{{"system":"http://hl7.org/fhir/restful-interaction","code":"{subtype}"}}]}},"action":"{letter}","occurredDateTime":"{at}","recorded":"{recorded}","outcome":{{"code":{{"system":"http://terminology.hl7.org/CodeSystem/audit-event-outcome","code":"0"}}}}"#,
            dicom.0, dicom.1
        );
    } else {
        let _ = write!(
            buf,
            r#","type":{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"{}","display":"{}"}},"subtype":[{{"system":"http://hl7.org/fhir/restful-interaction","code":"{subtype}"}}],"action":"{letter}","period":{{"start":"{at}","end":"{at}"}},"recorded":"{recorded}","outcome":"0""#,
            dicom.0, dicom.1
        );
    }
    let purpose = if btg {
        let reason =
            rng.pick(&["Akutt forverring, pasient innlagt via legevakt", "Pasient bevisstløs, trenger medisinliste", "Overflyttet fra annen avdeling før henvisning registrert"]);
        let code = if rng.chance(0.5) { "BTG" } else { "BLAALYS" };
        format!(r#"[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"{code}"}}],"text":"{reason}"}}]"#)
    } else {
        r#"[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}]"#.to_owned()
    };
    if !login {
        let _ = write!(buf, r#","{}":{purpose}"#, if r5 { "authorization" } else { "purposeOfEvent" });
    }
    buf.push_str(r#","agent":["#);
    if by_role {
        let _ = write!(
            buf,
            r#"{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}}]}},"who":{{"reference":"PractitionerRole/{}"}},"requestor":true{location}}}"#,
            e.role_id
        );
    } else {
        let _ = write!(
            buf,
            r#"{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/extra-security-role-type","code":"humanuser"}}]}},"role":[{{"coding":[{{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"{}"}}]}}],"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{}"}},"display":"{} {}"}},"{}":"{}","requestor":true{location}}},{{"type":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/provenance-participant-type","code":"custodian"}}]}},"who":{{"identifier":{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{}"}},"display":"{}"}},"requestor":false}}"#,
            e.role,
            e.hpr,
            e.person.given,
            e.person.family,
            if r5 { "networkString" } else { "altId" },
            if r5 { "10.20.30.40".to_owned() } else { format!("{}{}", &e.person.given.to_lowercase(), e.hpr.len()) },
            org.orgnr,
            org.name
        );
    }
    let _ = write!(
        buf,
        r#"],"source":{{"observer":{{"display":"{}","identifier":{{"value":"{}"}}}},"type":[{{"system":"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4"}}]}}"#,
        org.source_system, org.source_system
    );
    if let Some(patient_fnr) = patient {
        let doc = document;
        if r5 {
            let _ = write!(
                buf,
                r#","patient":{{"identifier":{{"system":"{}","value":"{patient_fnr}"}}}},"entity":[{{"what":{{"reference":"DocumentReference/{doc}"}},"role":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"3"}}]}}}}]"#,
                person_id_system(patient_fnr)
            );
        } else {
            let _ = write!(
                buf,
                r#","entity":[{{"what":{{"identifier":{{"system":"{}","value":"{patient_fnr}"}}}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"1"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"1"}}}},{{"what":{{"reference":"DocumentReference/{doc}"}},"type":{{"system":"http://terminology.hl7.org/CodeSystem/audit-entity-type","code":"2"}},"role":{{"system":"http://terminology.hl7.org/CodeSystem/object-role","code":"3"}}}}]"#,
                person_id_system(patient_fnr)
            );
        }
    }
    buf.push('}');
    event_id
}
