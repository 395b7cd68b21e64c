//! A synthetic Norwegian region for the analyser: households at real-looking addresses
//! (apartments by bruksenhetsnummer, moves, divorces), family links, staff who live among
//! their patients, care evidence that drives the legitimate accesses, and injected snooping
//! of every kind the detectors look for, with a ground-truth labels file.
//!
//! Everything is written as FHIR R4 bulk NDJSON (one file per resource type), the way a
//! `$export` delivers it, plus `AuditEvent.ndjson` and `labels.csv`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{organisations, person_id, write_audit_event, Employee, EventStyle, Organisation, Person, Rng, GIVEN_NAMES, SURNAMES};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

/// Sizes of the generated region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionScale {
    /// ~3 000 persons, ~200 staff, ~15 000 accesses: for tests.
    Small,
    /// ~30 000 persons, ~1 500 staff, ~150 000 accesses: the demo.
    Medium,
    /// ~300 000 persons, ~15 000 staff, ~1.5 M accesses.
    Large,
    /// Helse Sør-Øst in a week: ~3 M persons, ~60 000 staff, ~25 M accesses. As FHIR JSON
    /// that is ~46 GB, so benchmarks write its events straight to a store
    /// ([`Region::access_events`]).
    Hso,
}

impl RegionScale {
    /// (persons, staff, legitimate accesses, injected cases per snooping class)
    fn sizes(self) -> (usize, usize, usize, usize) {
        match self {
            RegionScale::Small => (3_000, 200, 15_000, 2),
            RegionScale::Medium => (30_000, 1_500, 150_000, 4),
            RegionScale::Large => (300_000, 15_000, 1_500_000, 12),
            RegionScale::Hso => (3_000_000, 60_000, 25_000_000, 20),
        }
    }
}

/// The snooping classes injected, named as the detectors that should find them.
pub const SNOOPING_CLASSES: &[&str] = &[
    "neighbour",
    "same_surname",
    "family",
    "colleague",
    "ex_address",
    "ex_partner",
    "btg_frequency",
    "protected_address",
    "own_record",
    "no_care",
    "care_ended",
    "after_employment",
    "unusual_volume",
    "celebrity",
];

const MUNICIPALITIES: &[(&str, &str, u32, f64)] =
    &[("Midtfjord", "5055", 7010, 0.5), ("Nordvik", "5056", 7650, 0.3), ("Sørås", "5057", 7340, 0.2)];
const STREET_NAMES: &[&str] = &[
    "Storgata", "Kirkegata", "Skolegata", "Fjordveien", "Bjørkeveien", "Granveien", "Solbakken", "Strandveien", "Parkveien", "Elvegata",
    "Kongens gate", "Dronningens gate", "Industriveien", "Nedre Bakklandet", "Furuveien", "Lønneveien", "Tunveien", "Havnegata",
    "Jernbanegata", "Myrveien", "Lyngveien", "Rognveien", "Åsveien", "Sjøgata",
];

/// One dwelling: a house, or an apartment in a block (by its bruksenhetsnummer).
#[derive(Debug, Clone)]
pub struct Dwelling {
    pub street: String,
    pub municipality: usize,
    pub number: u32,
    pub letter: Option<char>,
    pub unit: Option<String>,
}

/// A person's stay at a dwelling, in days since 1970; `to` is `None` for the current one.
#[derive(Debug, Clone, Copy)]
pub struct Stay {
    pub dwelling: usize,
    pub from: i64,
    pub to: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Relation {
    pub person: usize,
    pub related: usize,
    /// v3-RoleCode: SPS, DOMPART, FMRSPS, PRN, CHILD, SIB.
    pub code: &'static str,
    pub from: i64,
    pub to: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CareKind {
    Encounter,
    EpisodeOfCare,
    Appointment,
}

/// Care evidence: a patient in the care of a unit, with the staff who took part.
#[derive(Debug, Clone)]
pub struct Care {
    pub kind: CareKind,
    pub patient: usize,
    pub org: usize,
    pub unit: usize,
    pub participants: Vec<usize>,
    /// Seconds since 1970.
    pub start: i64,
    pub end: Option<i64>,
}

/// One generated access, before it is written as an AuditEvent.
#[derive(Debug, Clone)]
struct Planned {
    second: i64,
    employee: usize,
    patient: Option<usize>,
    btg: bool,
    /// The injected snooping class and case number; `None` for legitimate work.
    label: Option<(&'static str, usize)>,
}

/// The region: people, dwellings, staff, care and the week of accesses.
pub struct Region {
    pub orgs: Vec<Organisation>,
    pub persons: Vec<Person>,
    pub dwellings: Vec<Dwelling>,
    pub stays: Vec<Vec<Stay>>,
    pub protected: Vec<bool>,
    pub deceased: Vec<bool>,
    pub relations: Vec<Relation>,
    pub employees: Vec<Employee>,
    /// The person each employee is.
    pub employee_person: Vec<usize>,
    /// Employment periods (days); an ended one belongs to someone who has left.
    pub employment: Vec<(i64, Option<i64>)>,
    pub care: Vec<Care>,
    pub week_start: i64,
    accesses: Vec<Planned>,
    /// Active staff by (organisation, unit) and by organisation, once staffing is settled.
    staff_by_unit: HashMap<(usize, usize), Vec<usize>>,
    staff_by_org: Vec<Vec<usize>>,
    /// Care evidence by patient, once it is all generated.
    care_by_patient: HashMap<usize, Vec<usize>>,
}

/// Summary of what [`Region::write`] produced.
#[derive(Debug, Clone)]
pub struct Written {
    pub context_dir: PathBuf,
    pub events: PathBuf,
    pub labels: PathBuf,
    pub accesses: usize,
    pub injected: usize,
    pub resources: usize,
}

impl Region {
    /// Generates the region and its week of accesses, deterministically for `seed`.
    /// `week_start` is a Monday 00:00 UTC in seconds.
    pub fn generate(seed: u64, scale: RegionScale, week_start: i64) -> Region {
        let (persons, staff, accesses, cases) = scale.sizes();
        let mut rng = Rng::new(seed ^ 0x5EED_4E61_0000);
        let orgs = organisations(&mut rng);
        let mut region = Region {
            orgs,
            persons: Vec::with_capacity(persons),
            dwellings: Vec::new(),
            stays: Vec::with_capacity(persons),
            protected: Vec::new(),
            deceased: Vec::new(),
            relations: Vec::new(),
            employees: Vec::new(),
            employee_person: Vec::new(),
            employment: Vec::new(),
            care: Vec::new(),
            week_start,
            accesses: Vec::new(),
            staff_by_unit: HashMap::new(),
            staff_by_org: Vec::new(),
            care_by_patient: HashMap::new(),
        };
        region.populate(&mut rng, persons);
        region.hire(&mut rng, staff);
        region.leavers(&mut rng, cases);
        region.index_staff();
        region.historical_care(&mut rng);
        region.legitimate_work(&mut rng, accesses);
        for (i, c) in region.care.iter().enumerate() {
            region.care_by_patient.entry(c.patient).or_default().push(i);
        }
        region.inject_snooping(&mut rng, cases);
        region.accesses.sort_by_key(|a| a.second);
        region
    }

    fn today(&self) -> i64 {
        self.week_start / DAY
    }

    fn new_dwellings(&mut self, rng: &mut Rng, municipality: usize, street: &str, number: u32) -> Vec<usize> {
        let first = self.dwellings.len();
        let letter = rng.chance(0.1).then(|| (b'A' + rng.below(3) as u8) as char);
        if rng.chance(0.4) {
            // An apartment block: floors × units, each by its bruksenhetsnummer.
            let floors = 2 + rng.below(4) as u32;
            let per_floor = 2 + rng.below(3) as u32;
            for floor in 1..=floors {
                for unit in 1..=per_floor {
                    self.dwellings.push(Dwelling {
                        street: street.to_owned(),
                        municipality,
                        number,
                        letter,
                        unit: Some(format!("H{floor:02}{unit:02}")),
                    });
                }
            }
        } else {
            self.dwellings.push(Dwelling { street: street.to_owned(), municipality, number, letter, unit: None });
        }
        (first..self.dwellings.len()).collect()
    }

    fn new_person(&mut self, rng: &mut Rng, family: &'static str) -> usize {
        let given = GIVEN_NAMES[rng.below(GIVEN_NAMES.len() as u64) as usize];
        self.persons.push(Person { fnr: person_id(rng), given, family });
        self.stays.push(Vec::new());
        self.protected.push(rng.chance(0.004));
        self.deceased.push(rng.chance(0.002));
        self.persons.len() - 1
    }

    fn relate(&mut self, a: usize, b: usize, code: &'static str, from: i64, to: Option<i64>) {
        self.relations.push(Relation { person: a, related: b, code, from, to });
    }

    /// Households at dwellings along streets, with past addresses and divorces.
    fn populate(&mut self, rng: &mut Rng, persons: usize) {
        let today = self.today();
        let mut free: Vec<usize> = Vec::new();
        let mut street_no = 0usize;
        while self.persons.len() < persons {
            if free.is_empty() {
                // A new street of 10–40 addresses in a municipality.
                let m = pick_weighted(rng, MUNICIPALITIES.iter().map(|m| m.3));
                let name = STREET_NAMES[street_no % STREET_NAMES.len()];
                let name = if street_no >= STREET_NAMES.len() { format!("{name} {}", street_no / STREET_NAMES.len() + 1) } else { name.to_owned() };
                street_no += 1;
                for number in 1..=(10 + rng.below(30) as u32) {
                    let d = self.new_dwellings(rng, m, &name, number);
                    free.extend(d);
                }
                // Households fill dwellings in a random order.
                for i in (1..free.len()).rev() {
                    free.swap(i, rng.below(i as u64 + 1) as usize);
                }
            }
            let Some(home) = free.pop() else { continue };
            let moved_in = today - 30 - rng.below(25 * 365) as i64;
            let family = surname(rng);
            let kind = rng.below(100);
            let mut members = Vec::new();
            let adults = if kind < 30 { 1 } else { 2 };
            for a in 0..adults {
                let name = if a == 1 && rng.chance(0.35) { surname(rng) } else { family };
                members.push(self.new_person(rng, name));
            }
            let couple = self.relations.len();
            if adults == 2 {
                let code = if rng.chance(0.6) { "SPS" } else { "DOMPART" };
                self.relate(members[0], members[1], code, moved_in, None);
                self.relate(members[1], members[0], code, moved_in, None);
            }
            if kind >= 55 || (kind < 30 && rng.chance(0.2)) {
                let children = 1 + rng.below(3) as usize;
                let first_child = members.len();
                for _ in 0..children {
                    let child = self.new_person(rng, family);
                    for &parent in &members[..adults] {
                        self.relate(parent, child, "CHILD", moved_in, None);
                        self.relate(child, parent, "PRN", moved_in, None);
                    }
                    members.push(child);
                }
                for i in first_child..members.len() {
                    for j in first_child..members.len() {
                        if i != j {
                            self.relate(members[i], members[j], "SIB", moved_in, None);
                        }
                    }
                }
            }
            for &m in &members {
                // Some adults lived elsewhere before; that is what ex-address checks look at.
                if rng.chance(0.3) && !free.is_empty() {
                    let before = free[rng.below(free.len() as u64) as usize];
                    self.stays[m].push(Stay { dwelling: before, from: moved_in - 200 - rng.below(3000) as i64, to: Some(moved_in) });
                }
                self.stays[m].push(Stay { dwelling: home, from: moved_in, to: None });
            }
            // A divorce: one partner moved out, the relationship ended.
            if adults == 2 && rng.chance(0.1) && !free.is_empty() {
                let split = today - 60 - rng.below(5 * 365) as i64;
                let leaver = members[1];
                let new_home = free.pop().unwrap_or(home);
                if let Some(stay) = self.stays[leaver].last_mut() {
                    stay.to = Some(split);
                }
                self.stays[leaver].push(Stay { dwelling: new_home, from: split, to: None });
                for r in &mut self.relations[couple..couple + 2] {
                    r.to = Some(split);
                }
            }
        }
    }

    fn current_dwelling(&self, person: usize) -> Option<usize> {
        self.stays[person].iter().find(|s| s.to.is_none()).map(|s| s.dwelling)
    }

    /// Staff are chosen among the adults of the region: they live among their patients.
    fn hire(&mut self, rng: &mut Rng, staff: usize) {
        let mut is_child = vec![false; self.persons.len()];
        for r in &self.relations {
            if r.code == "PRN" {
                is_child[r.person] = true;
            }
        }
        let adults: Vec<usize> = (0..self.persons.len()).filter(|&p| !is_child[p] && !self.deceased[p]).collect();
        let mut taken = HashSet::new();
        let today = self.today();
        while self.employees.len() < staff && taken.len() < adults.len() {
            let p = adults[rng.below(adults.len() as u64) as usize];
            if !taken.insert(p) {
                continue;
            }
            let org = pick_weighted(rng, [0.65, 0.12, 0.1, 0.07, 0.06].into_iter());
            let unit = rng.below(self.orgs[org].units.len() as u64) as usize;
            let i = self.employees.len();
            self.employees.push(Employee {
                person: self.persons[p].clone(),
                hpr: format!("{}", 1_000_000 + rng.below(8_999_999)),
                org,
                unit,
                role: crate::ROLES[rng.below(crate::ROLES.len() as u64) as usize],
                role_id: format!("role-{i}"),
            });
            self.employee_person.push(p);
            self.employment.push((today - 100 - rng.below(15 * 365) as i64, None));
        }
    }

    /// Staff who left 1–4 months before the week (their accounts, it turns out, still work).
    fn leavers(&mut self, rng: &mut Rng, count: usize) {
        let today = self.today();
        for _ in 0..count {
            let e = self.random_active_employee(rng);
            self.employment[e].1 = Some(today - 30 - rng.below(90) as i64);
        }
    }

    fn index_staff(&mut self) {
        self.staff_by_org = vec![Vec::new(); self.orgs.len()];
        for e in 0..self.employees.len() {
            if self.employment[e].1.is_none() {
                let (org, unit) = (self.employees[e].org, self.employees[e].unit);
                self.staff_by_unit.entry((org, unit)).or_default().push(e);
                self.staff_by_org[org].push(e);
            }
        }
    }

    fn active_staff(&self, org: usize, unit: Option<usize>) -> &[usize] {
        match unit {
            Some(u) => self.staff_by_unit.get(&(org, u)).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.staff_by_org[org],
        }
    }

    fn team(&self, rng: &mut Rng, org: usize, unit: usize, size: usize) -> Vec<usize> {
        let staff = self.active_staff(org, Some(unit));
        let staff = if staff.is_empty() { self.active_staff(org, None) } else { staff };
        if staff.is_empty() {
            return Vec::new();
        }
        let mut team: Vec<usize> = (0..size).map(|_| staff[rng.below(staff.len() as u64) as usize]).collect();
        team.sort_unstable();
        team.dedup();
        team
    }

    /// Past hospital stays, months to years ago: the evidence "care ended long ago" needs.
    fn historical_care(&mut self, rng: &mut Rng) {
        for patient in 0..self.persons.len() {
            if rng.chance(0.2) {
                let unit = rng.below(self.orgs[0].units.len() as u64) as usize;
                let participants = self.team(rng, 0, unit, 3);
                let start = self.week_start - (60 + rng.below(600) as i64) * DAY;
                let end = start + (1 + rng.below(10) as i64) * DAY;
                self.care.push(Care { kind: CareKind::Encounter, patient, org: 0, unit, participants, start, end: Some(end) });
            }
        }
    }

    fn daytime(&self, rng: &mut Rng, day: i64) -> i64 {
        // 07:30–16:00 local (UTC+1).
        self.week_start + day * DAY + 6 * HOUR + 1800 + rng.below(8 * 3600 + 1800) as i64
    }

    /// Care episodes in the week and the accesses of the staff who give the care.
    fn legitimate_work(&mut self, rng: &mut Rng, target: usize) {
        let week_end = self.week_start + 7 * DAY;
        let kin: HashSet<(usize, usize)> = self.relations.iter().filter(|r| r.to.is_none()).map(|r| (r.person, r.related)).collect();
        let mut planned = 0usize;
        while planned < target {
            let org = pick_weighted(rng, [0.65, 0.12, 0.1, 0.07, 0.06].into_iter());
            let unit = rng.below(self.orgs[org].units.len() as u64) as usize;
            let size = 2 + rng.below(4) as usize;
            let team = self.team(rng, org, unit, size);
            if team.is_empty() {
                continue;
            }
            let patient = rng.below(self.persons.len() as u64) as usize;
            if team.iter().any(|&e| self.employee_person[e] == patient || kin.contains(&(self.employee_person[e], patient))) {
                // Nobody is on their own or their family's care team.
                continue;
            }
            let unit_name = self.orgs[org].units[unit].1.as_str();
            let emergency = matches!(unit_name, "Akuttmottak" | "Legevakt") && rng.chance(0.3);
            let (kind, start, end, accesses) = match org {
                0 => {
                    let start = self.week_start - 2 * DAY + rng.below(9 * DAY as u64) as i64;
                    (CareKind::Encounter, start, Some(start + 2 * HOUR + rng.below(5 * DAY as u64) as i64), 3 + rng.below(25) as usize)
                }
                1 | 2 => {
                    let start = self.week_start - (10 + rng.below(700) as i64) * DAY;
                    (CareKind::EpisodeOfCare, start, None, 2 + rng.below(8) as usize)
                }
                _ => {
                    let day = rng.below(5) as i64;
                    let start = self.daytime(rng, day);
                    (CareKind::Appointment, start, Some(start + 20 * 60), 2 + rng.below(5) as usize)
                }
            };
            // Not every member of a team is recorded as a participant; their unit still is.
            let participants: Vec<usize> = team.iter().copied().filter(|_| !rng.chance(0.15)).collect();
            self.care.push(Care { kind, patient, org, unit, participants, start, end });
            // Accesses spread over the whole episode (an hour before it to a day after);
            // those outside the week are not in this week's log.
            // Ongoing municipal care is looked at throughout the week.
            let from = if kind == CareKind::EpisodeOfCare { (start - HOUR).max(self.week_start) } else { start - HOUR };
            let to = end.map_or(week_end, |e| e + DAY).max(from + HOUR);
            for i in 0..accesses {
                let mut employee = team[rng.below(team.len() as u64) as usize];
                let mut second = from + rng.below((to - from) as u64) as i64;
                let btg = emergency && i < 2;
                if btg {
                    // Self-authorised before the encounter was registered.
                    second = start - rng.below(3600) as i64;
                } else if rng.chance(0.03) {
                    // A consultation from another unit that left no trace in patient logistics.
                    let staff = self.active_staff(org, None);
                    for _ in 0..8 {
                        let other = staff[rng.below(staff.len() as u64) as usize];
                        if self.employees[other].unit != unit {
                            employee = other;
                            break;
                        }
                    }
                }
                if second < self.week_start || second >= week_end {
                    continue;
                }
                self.accesses.push(Planned { second, employee, patient: Some(patient), btg, label: None });
                planned += 1;
            }
            if rng.chance(0.05) {
                let e = team[0];
                let second = from.clamp(self.week_start, week_end - 1);
                self.accesses.push(Planned { second, employee: e, patient: None, btg: false, label: None });
            }
        }
    }

    /// Care that links `patient` to the employee's unit around the week.
    fn in_care(&self, patient: usize, employee: usize) -> bool {
        let e = &self.employees[employee];
        self.care_by_patient.get(&patient).into_iter().flatten().map(|&i| &self.care[i]).any(|c| {
            c.org == e.org && (c.unit == e.unit || c.participants.contains(&employee)) && c.end.is_none_or(|end| end > self.week_start - 30 * DAY)
        })
    }

    fn random_active_employee(&self, rng: &mut Rng) -> usize {
        loop {
            let e = rng.below(self.employees.len() as u64) as usize;
            if self.employment[e].1.is_none() {
                return e;
            }
        }
    }

    fn unrelated_patient(&self, rng: &mut Rng, employee: usize) -> usize {
        loop {
            let p = rng.below(self.persons.len() as u64) as usize;
            if p != self.employee_person[employee] && !self.in_care(p, employee) {
                return p;
            }
        }
    }

    fn snoop(&mut self, rng: &mut Rng, class: &'static str, case: usize, employee: usize, patient: usize, times: usize) {
        let day = rng.below(5) as i64;
        for i in 0..times {
            let offset = (day + i as i64 * (1 + rng.below(2) as i64)).min(6);
            let second = self.daytime(rng, offset);
            self.accesses.push(Planned { second, employee, patient: Some(patient), btg: false, label: Some((class, case)) });
        }
    }

    /// Plants `cases` cases of every snooping class, each by a different employee.
    fn inject_snooping(&mut self, rng: &mut Rng, cases: usize) {
        let mut used: HashSet<usize> = HashSet::new();
        let mut case_no = 0usize;
        let by_building = self.buildings();
        let protected: Vec<usize> = (0..self.persons.len()).filter(|&p| self.protected[p]).collect();
        for &class in SNOOPING_CLASSES {
            let mut made = 0;
            let mut attempts = 0;
            while made < cases && attempts < 10_000 {
                attempts += 1;
                let e = if class == "after_employment" {
                    let left: Vec<usize> = (0..self.employees.len()).filter(|&e| self.employment[e].1.is_some() && !used.contains(&e)).collect();
                    if left.is_empty() {
                        break;
                    }
                    left[rng.below(left.len() as u64) as usize]
                } else {
                    self.random_active_employee(rng)
                };
                if used.contains(&e) {
                    continue;
                }
                let me = self.employee_person[e];
                let target = match class {
                    "neighbour" => self.current_dwelling(me).and_then(|d| {
                        let key = building_key(&self.dwellings[d]);
                        let near: Vec<usize> = by_building.get(&key).into_iter().flatten().copied().filter(|&p| self.current_dwelling(p) != Some(d)).collect();
                        (!near.is_empty()).then(|| near[rng.below(near.len() as u64) as usize])
                    }),
                    "same_surname" => {
                        // A rare surname shared with someone unrelated (a new family name in the region).
                        let p = self.unrelated_patient(rng, e);
                        let rare = RARE_SURNAMES[case_no % RARE_SURNAMES.len()];
                        self.persons[me].family = rare;
                        self.employees[e].person.family = rare;
                        self.persons[p].family = rare;
                        Some(p)
                    }
                    "family" => {
                        let kin: Vec<usize> = self.relations.iter().filter(|r| r.person == me && r.to.is_none()).map(|r| r.related).collect();
                        (!kin.is_empty()).then(|| kin[rng.below(kin.len() as u64) as usize])
                    }
                    "colleague" => {
                        let colleagues: Vec<usize> = self.active_staff(self.employees[e].org, Some(self.employees[e].unit)).iter().copied().filter(|&c| c != e).collect();
                        (!colleagues.is_empty()).then(|| self.employee_person[colleagues[rng.below(colleagues.len() as u64) as usize]])
                    }
                    "ex_address" => {
                        // The employee lived, years ago, where the patient lives now.
                        let p = self.unrelated_patient(rng, e);
                        self.current_dwelling(p).map(|d| {
                            let from = self.stays[me].iter().map(|s| s.from).min().unwrap_or(self.today()) - 2000;
                            self.stays[me].insert(0, Stay { dwelling: d, from, to: Some(from + 900) });
                            p
                        })
                    }
                    "ex_partner" => {
                        let p = self.unrelated_patient(rng, e);
                        let split = self.today() - 400 - rng.below(1500) as i64;
                        self.relate(me, p, "SPS", split - 3000, Some(split));
                        self.relate(p, me, "SPS", split - 3000, Some(split));
                        Some(p)
                    }
                    "protected_address" => {
                        (!protected.is_empty()).then(|| protected[rng.below(protected.len() as u64) as usize]).filter(|&p| !self.in_care(p, e) && p != me)
                    }
                    "own_record" => Some(me),
                    "care_ended" => {
                        let former: Vec<usize> = self
                            .care
                            .iter()
                            .filter(|c| c.org == self.employees[e].org && c.unit == self.employees[e].unit && c.end.is_some_and(|end| end < self.week_start - 60 * DAY))
                            .map(|c| c.patient)
                            .filter(|&p| p != me && !self.in_care(p, e))
                            .collect();
                        (!former.is_empty()).then(|| former[rng.below(former.len() as u64) as usize])
                    }
                    _ => None,
                };
                match class {
                    "btg_frequency" => {
                        // Self-authorisation, again and again, in a unit where peers rarely need it.
                        if matches!(self.orgs[self.employees[e].org].units[self.employees[e].unit].1.as_str(), "Akuttmottak" | "Legevakt") {
                            continue;
                        }
                        for _ in 0..8 + rng.below(5) {
                            let p = self.unrelated_patient(rng, e);
                            let day = rng.below(7) as i64;
                            let second = self.daytime(rng, day);
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), btg: true, label: Some((class, case_no)) });
                        }
                    }
                    "no_care" => {
                        let p = self.unrelated_patient(rng, e);
                        let times = 3 + rng.below(3) as usize;
                        self.snoop(rng, class, case_no, e, p, times);
                    }
                    "after_employment" => {
                        // Someone who left, whose account still works.
                        for _ in 0..2 + rng.below(2) {
                            let p = self.unrelated_patient(rng, e);
                            self.snoop(rng, class, case_no, e, p, 1);
                        }
                    }
                    "unusual_volume" => {
                        // Browsing at night: many different patients within an hour or two.
                        let night = self.week_start + (rng.below(7) as i64) * DAY + 30 * 60 + rng.below(HOUR as u64) as i64;
                        for _ in 0..15 + rng.below(10) {
                            let p = self.unrelated_patient(rng, e);
                            let second = night + rng.below(80 * 60) as i64;
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), btg: false, label: Some((class, case_no)) });
                        }
                    }
                    "celebrity" => {
                        // A patient in the news, opened by many staff with no reason to.
                        let p = rng.below(self.persons.len() as u64) as usize;
                        let day = rng.below(6) as i64;
                        let mut snoopers = 0;
                        while snoopers < 8 {
                            let s = self.random_active_employee(rng);
                            if used.contains(&s) || self.in_care(p, s) || self.employee_person[s] == p {
                                continue;
                            }
                            used.insert(s);
                            snoopers += 1;
                            let second = self.week_start + day * DAY + rng.below(36 * HOUR as u64) as i64;
                            self.accesses.push(Planned { second, employee: s, patient: Some(p), btg: false, label: Some((class, case_no)) });
                        }
                    }
                    _ => {
                        let Some(p) = target else { continue };
                        if class != "own_record" && (p == me || self.in_care(p, e)) {
                            continue;
                        }
                        let times = 1 + rng.below(3) as usize;
                        self.snoop(rng, class, case_no, e, p, times);
                    }
                }
                used.insert(e);
                made += 1;
                case_no += 1;
            }
        }
    }

    /// Persons by building (street, number and letter), for neighbours.
    fn buildings(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for p in 0..self.persons.len() {
            if let Some(d) = self.current_dwelling(p) {
                map.entry(building_key(&self.dwellings[d])).or_default().push(p);
            }
        }
        map
    }

    /// Writes the context as bulk NDJSON into `out/context/`, the week's AuditEvents into
    /// `out/AuditEvent.ndjson` (time order) and the injected cases into `out/labels.csv`.
    pub fn write(&self, out: &Path, seed: u64) -> io::Result<Written> {
        let context_dir = out.join("context");
        std::fs::create_dir_all(&context_dir)?;
        let resources = self.write_context(&context_dir)?;
        let events = out.join("AuditEvent.ndjson");
        let labels = out.join("labels.csv");
        let mut ev = io::BufWriter::new(std::fs::File::create(&events)?);
        let mut lab = io::BufWriter::new(std::fs::File::create(&labels)?);
        writeln!(lab, "event_id,class,case,accessor_hpr,patient_id")?;
        let style = EventStyle { r5_share: 0.3, role_reference_share: 0.1 };
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut buf = String::with_capacity(4096);
        let mut injected = 0;
        for a in &self.accesses {
            buf.clear();
            let e = &self.employees[a.employee];
            let patient = a.patient.map(|p| self.persons[p].fnr.as_str());
            let id = write_audit_event(&self.orgs[e.org], e, patient, a.second, rng.below(10_000_000), a.btg, &style, &mut rng, &mut buf);
            buf.push('\n');
            ev.write_all(buf.as_bytes())?;
            if let Some((class, case)) = a.label {
                writeln!(lab, "{id},{class},case-{case:04},{},{}", e.hpr, patient.unwrap_or(""))?;
                injected += 1;
            }
        }
        ev.flush()?;
        lab.flush()?;
        Ok(Written { context_dir, events, labels, accesses: self.accesses.len(), injected, resources })
    }

    /// Writes the context alone, one NDJSON file per resource type; returns the resource count.
    pub fn write_context(&self, dir: &Path) -> io::Result<usize> {
        let mut count = 0;
        let mut file = |name: &str, lines: &mut WriteLines<'_>| -> io::Result<()> {
            let mut w = io::BufWriter::new(std::fs::File::create(dir.join(format!("{name}.ndjson")))?);
            let mut buf = String::new();
            lines(&mut buf, &mut |line: &str| {
                count += 1;
                w.write_all(line.as_bytes())?;
                w.write_all(b"\n")
            })?;
            w.flush()
        };
        file("Organization", &mut |b, emit| {
            for org in &self.orgs {
                b.clear();
                let _ = write!(b, r#"{{"resourceType":"Organization","id":"org-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{0}"}}],"name":"{1}"}}"#, org.orgnr, org.name);
                emit(b)?;
                for (resh, name) in &org.units {
                    b.clear();
                    let _ = write!(
                        b,
                        r#"{{"resourceType":"Organization","id":"unit-{resh}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.102","value":"{resh}"}}],"name":"{name}","partOf":{{"reference":"Organization/org-{}"}}}}"#,
                        org.orgnr
                    );
                    emit(b)?;
                }
            }
            Ok(())
        })?;
        file("Patient", &mut |b, emit| {
            for (i, p) in self.persons.iter().enumerate() {
                b.clear();
                let _ = write!(b, r#"{{"resourceType":"Patient","id":"p-{i}""#);
                if self.protected[i] {
                    b.push_str(r#","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}"#);
                }
                let _ = write!(b, r#","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{}"}}],"name":[{{"family":"{}","given":["{}"]}}]"#, p.fnr, p.family, p.given);
                self.write_addresses(i, b);
                if self.deceased[i] {
                    let _ = write!(b, r#","deceasedDateTime":"{}""#, date(self.today() - 20));
                }
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        file("RelatedPerson", &mut |b, emit| {
            for (i, r) in self.relations.iter().enumerate() {
                b.clear();
                let _ = write!(
                    b,
                    r#"{{"resourceType":"RelatedPerson","id":"rel-{i}","patient":{{"reference":"Patient/p-{}"}},"identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{}"}}],"relationship":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleCode","code":"{}"}}]}}]"#,
                    r.person,
                    self.persons[r.related].fnr,
                    r.code
                );
                write_date_period(b, r.from, r.to);
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        file("Practitioner", &mut |b, emit| {
            for (i, e) in self.employees.iter().enumerate() {
                b.clear();
                let _ = write!(
                    b,
                    r#"{{"resourceType":"Practitioner","id":"pr-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{0}"}},{{"system":"urn:oid:2.16.578.1.12.4.1.4.1","value":"{1}"}}],"name":[{{"family":"{2}","given":["{3}"]}}]"#,
                    e.hpr, e.person.fnr, e.person.family, e.person.given
                );
                self.write_addresses(self.employee_person[i], b);
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        file("PractitionerRole", &mut |b, emit| {
            for (i, e) in self.employees.iter().enumerate() {
                b.clear();
                let (from, to) = self.employment[i];
                let _ = write!(
                    b,
                    r#"{{"resourceType":"PractitionerRole","id":"{}","practitioner":{{"reference":"Practitioner/pr-{}"}},"organization":{{"reference":"Organization/unit-{}"}},"code":[{{"coding":[{{"system":"urn:oid:2.16.578.1.12.4.1.1.9060","code":"{}"}}]}}]"#,
                    e.role_id,
                    e.hpr,
                    self.orgs[e.org].units[e.unit].0,
                    e.role
                );
                write_date_period(b, from, to);
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        for (kind, name) in [(CareKind::Encounter, "Encounter"), (CareKind::EpisodeOfCare, "EpisodeOfCare"), (CareKind::Appointment, "Appointment")] {
            file(name, &mut |b, emit| {
                for (i, c) in self.care.iter().enumerate().filter(|(_, c)| c.kind == kind) {
                    b.clear();
                    self.write_care(i, c, b);
                    emit(b)?;
                }
                Ok(())
            })?;
        }
        Ok(count)
    }

    /// The week's accesses as the FHIR mapping would make them (user by HPR number, tenant
    /// the employer), with the injected class of each; for benchmarks that write a store
    /// directly instead of through JSON.
    pub fn access_events(&self, seed: u64) -> impl Iterator<Item = (loggvakt_model::AccessEvent, Option<&'static str>)> + '_ {
        use loggvakt_model::codes::{actions, basis, channel, outcome};
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        self.accesses.iter().map(move |a| {
            let e = &self.employees[a.employee];
            let org = &self.orgs[e.org];
            let (unit_id, unit_name) = &org.units[e.unit];
            let event_id = rng.uuid();
            let at = loggvakt_model::Timestamp(a.second * 1_000_000 + rng.below(1_000_000) as i64);
            let patient = a.patient.map(|p| self.persons[p].fnr.clone());
            let event = loggvakt_model::AccessEvent {
                source_digest: loggvakt_model::Digest16(blake3::hash(event_id.as_bytes()).as_bytes()[..16].try_into().unwrap_or([0; 16])),
                event_id,
                source_system: org.source_system.to_owned(),
                occurred_at: at,
                recorded_at: Some(loggvakt_model::Timestamp(at.0 + 1_000_000)),
                received_at: loggvakt_model::Timestamp(at.0 + 2_000_000),
                tenant_orgnr: org.orgnr.clone(),
                user_hpr: Some(e.hpr.clone()),
                user_name: Some(format!("{} {}", e.person.given, e.person.family)),
                unit_id: Some(unit_id.clone()),
                unit_name: Some(unit_name.clone()),
                role_code: Some(e.role.to_owned()),
                patient_id_kind: patient.as_ref().map(|_| "fnr".to_owned()),
                record_part: patient.as_ref().map(|_| "DocumentReference".to_owned()),
                document_id: patient.as_ref().map(|_| format!("DocumentReference/{}", rng.below(10_000_000))),
                patient_id: patient,
                action: if a.patient.is_some() { actions::READ } else { actions::LOGIN }.to_owned(),
                action_code: Some(if a.patient.is_some() { "R" } else { "E" }.to_owned()),
                basis: if a.btg { basis::SELF_AUTHORISATION } else { basis::NORMAL }.to_owned(),
                purpose_code: a.patient.map(|_| if a.btg { "BTG" } else { "TREAT" }.to_owned()),
                channel: channel::DESKTOP.to_owned(),
                outcome: outcome::GRANTED.to_owned(),
                source_format: "fhir-r4".to_owned(),
                ..Default::default()
            };
            (event, a.label.map(|(class, _)| class))
        })
    }

    fn write_addresses(&self, person: usize, b: &mut String) {
        if self.stays[person].is_empty() {
            return;
        }
        b.push_str(r#","address":["#);
        for (k, s) in self.stays[person].iter().enumerate() {
            let d = &self.dwellings[s.dwelling];
            let (m, _, postcode, _) = MUNICIPALITIES[d.municipality];
            if k > 0 {
                b.push(',');
            }
            let letter = d.letter.map(String::from).unwrap_or_default();
            let _ = write!(b, r#"{{"use":"{}","type":"physical","line":["{} {}{letter}""#, if s.to.is_none() { "home" } else { "old" }, d.street, d.number);
            if let Some(unit) = &d.unit {
                let _ = write!(b, r#","{unit}""#);
            }
            let _ = write!(b, r#"],"city":"{m}","district":"{m}","postalCode":"{}","country":"NO""#, postcode + d.number % 7);
            write_date_period(b, s.from, s.to);
            b.push('}');
        }
        b.push(']');
    }

    fn write_care(&self, i: usize, c: &Care, b: &mut String) {
        let unit_ref = format!("Organization/unit-{}", self.orgs[c.org].units[c.unit].0);
        let period = |b: &mut String, key: &str| {
            let _ = write!(b, r#","{key}":{{"start":"{}""#, instant(c.start));
            if let Some(end) = c.end {
                let _ = write!(b, r#","end":"{}""#, instant(end));
            }
            b.push('}');
        };
        match c.kind {
            CareKind::Encounter => {
                let status = if c.end.is_some_and(|e| e < self.week_start + 7 * DAY) { "finished" } else { "in-progress" };
                let _ = write!(
                    b,
                    r#"{{"resourceType":"Encounter","id":"enc-{i}","status":"{status}","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"}},"subject":{{"reference":"Patient/p-{}"}},"serviceProvider":{{"reference":"{unit_ref}"}},"participant":["#,
                    c.patient
                );
                for (k, e) in c.participants.iter().enumerate() {
                    let _ = write!(b, r#"{}{{"individual":{{"reference":"PractitionerRole/{}"}}}}"#, if k > 0 { "," } else { "" }, self.employees[*e].role_id);
                }
                b.push(']');
                period(b, "period");
            }
            CareKind::EpisodeOfCare => {
                let _ = write!(
                    b,
                    r#"{{"resourceType":"EpisodeOfCare","id":"eoc-{i}","status":"active","patient":{{"reference":"Patient/p-{}"}},"managingOrganization":{{"reference":"{unit_ref}"}}"#,
                    c.patient
                );
                if let Some(e) = c.participants.first() {
                    let _ = write!(b, r#","careManager":{{"reference":"Practitioner/pr-{}"}}"#, self.employees[*e].hpr);
                }
                period(b, "period");
            }
            CareKind::Appointment => {
                let _ = write!(b, r#"{{"resourceType":"Appointment","id":"app-{i}","status":"fulfilled","start":"{}""#, instant(c.start));
                if let Some(end) = c.end {
                    let _ = write!(b, r#","end":"{}""#, instant(end));
                }
                let _ = write!(b, r#","participant":[{{"actor":{{"reference":"Patient/p-{}"}},"status":"accepted"}}"#, c.patient);
                for e in &c.participants {
                    let _ = write!(b, r#",{{"actor":{{"reference":"PractitionerRole/{}"}},"status":"accepted"}}"#, self.employees[*e].role_id);
                }
                b.push(']');
            }
        }
        b.push('}');
    }
}

/// Writes one file's lines into a buffer and hands each to the emitter.
type WriteLines<'a> = dyn FnMut(&mut String, &mut dyn FnMut(&str) -> io::Result<()>) -> io::Result<()> + 'a;

/// Surnames that no household draws, given to the same-surname cases.
const RARE_SURNAMES: &[&str] = &["Kvammen", "Tørrissen", "Åsgårdstrand", "Vikeså", "Lysebotn", "Hjelmeland", "Brattbakk", "Øvstedal"];

fn surname(rng: &mut Rng) -> &'static str {
    // Falling weights, so Hansen is common and the tail of the list is rare, as in Norway.
    let n = SURNAMES.len() as u64;
    SURNAMES[((rng.below(n) * rng.below(n)) / n) as usize]
}

fn pick_weighted(rng: &mut Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
        last = i;
    }
    last
}

fn building_key(d: &Dwelling) -> String {
    format!("{}|{}|{}{}", d.municipality, d.street, d.number, d.letter.map(String::from).unwrap_or_default())
}

/// `,"period":{"start":…,"end":…}` for days since 1970; an open period has no end.
fn write_date_period(b: &mut String, from: i64, to: Option<i64>) {
    let _ = write!(b, r#","period":{{"start":"{}""#, date(from));
    if let Some(to) = to {
        let _ = write!(b, r#","end":"{}""#, date(to));
    }
    b.push('}');
}

fn date(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * DAY, 0).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn instant(second: i64) -> String {
    chrono::DateTime::from_timestamp(second, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_snooping_class_is_injected_and_labelled() {
        let region = Region::generate(3, RegionScale::Small, 1_794_700_800);
        for class in SNOOPING_CLASSES {
            assert!(region.accesses.iter().any(|a| a.label.is_some_and(|(c, _)| c == *class)), "no injected case of {class}");
        }
        let legit = region.accesses.iter().filter(|a| a.label.is_none()).count();
        assert!(legit >= 15_000, "legitimate accesses: {legit}");
    }

    #[test]
    fn the_same_seed_gives_the_same_region() {
        let a = Region::generate(9, RegionScale::Small, 1_794_700_800);
        let b = Region::generate(9, RegionScale::Small, 1_794_700_800);
        assert_eq!(a.persons.iter().map(|p| &p.fnr).collect::<Vec<_>>(), b.persons.iter().map(|p| &p.fnr).collect::<Vec<_>>());
        assert_eq!(a.accesses.len(), b.accesses.len());
    }
}
