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

use crate::{organisations, person_id, write_audit_event, AccessKind, Employee, EventStyle, Organisation, Person, Rng, GIVEN_NAMES, SURNAMES};

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
    ///
    /// Cases per class are few on purpose: a queue holds 25 cases per organisation per
    /// week, and a world in which the hospital's true cases outnumber that (two per class
    /// in 130 hospital staff, as this had before) measures the capacity, not the ranking,
    /// and is a snooping rate no region has.
    fn sizes(self) -> (usize, usize, usize, usize) {
        match self {
            RegionScale::Small => (3_000, 200, 15_000, 1),
            RegionScale::Medium => (30_000, 1_500, 150_000, 1),
            RegionScale::Large => (300_000, 15_000, 1_500_000, 3),
            RegionScale::Hso => (3_000_000, 60_000, 25_000_000, 6),
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
    "btg_pretext",
    "search_then_read",
    "spread_over_weeks",
    "protected_address",
    "own_record",
    "no_care",
    "care_ended",
    "after_employment",
    "unusual_volume",
    "celebrity",
    "off_duty",
];

/// What makes a real region's log hard to review, as published audit studies and an
/// independently generated region showed it: legitimate work that leaves no care record,
/// units missing from events, staff known by HPR number alone, addresses spelled
/// differently in the staff and population registers. Each is a share (0 turns it off);
/// [`Confounders::default`] turns every one on, [`Confounders::none`] gives the clean
/// world the detectors were first written against. `docs/quality.md` lists them with the
/// figures they give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confounders {
    /// Share of AuditEvents whose user agent has no location: the unit must come from the
    /// user's role valid at the time.
    pub unit_missing: f64,
    /// Share of staff whose Practitioner carries only the HPR number, no person id.
    pub hpr_only_staff: f64,
    /// Share of staff whose Practitioner address is spelled otherwise than the population
    /// register spells the same home: street type abbreviated ("gt.", "vn."), upper case,
    /// apartment as "leil. 203", house letter dropped.
    pub address_variants: f64,
    /// Share of hospital stays on which laboratory, radiology or pharmacy staff open the
    /// record (the hospital gains those three units).
    pub service_work: f64,
    /// Of that service work, the share that has an order or result in the context
    /// (ServiceRequest, DiagnosticReport, MedicationRequest naming the performing unit).
    pub orders_recorded: f64,
    /// Share of hospital stays a nurse from the float pool (a unit of its own) works on.
    pub float_pool: f64,
    /// Share of hospital stays opened at night by an on-call doctor from another unit.
    pub on_call: f64,
    /// Share of municipal episodes of care (service decisions) registered at another unit
    /// of the municipality than the one whose staff give the care.
    pub municipal_other_unit: f64,
    /// Chance that the week has a mass-casualty day: 8–12 patients brought to the
    /// emergency department at once, opened by staff from across the hospital hours
    /// before their admissions are registered, with only the emergency team on them.
    pub mass_casualty: f64,
    /// Share of persons known by a D-number (foreign workers, short stays), in the
    /// registers and in the events alike.
    pub d_numbers: f64,
    /// Share of the hospital's staff who are students: on care teams under supervision,
    /// never recorded as participants.
    pub students: f64,
    /// Share of hospital stays booked by the central booking office (Pasientkontoret)
    /// 1–20 days ahead: a secretary opens the record when the Appointment is made
    /// (`created`), long before the stay.
    pub booking: f64,
    /// Share of finished hospital stays whose record a quality-improvement reviewer
    /// (Kvalitet og pasientsikkerhet) reads 1–10 days after discharge.
    pub quality_review: f64,
    /// Share of AuditEvents a source sends again later (a retry after a lost
    /// acknowledgement): the same event, stored once.
    pub resends: f64,
    /// Share of the hospital's units whose duty rosters are in the context (Schedule with
    /// a Slot per shift, on-call cover of another unit included): the shifts each of
    /// their staff worked, and the nights a doctor from elsewhere covered them.
    pub rosters: f64,
}

impl Default for Confounders {
    fn default() -> Self {
        Confounders {
            unit_missing: 0.35,
            hpr_only_staff: 0.08,
            address_variants: 0.4,
            service_work: 0.35,
            orders_recorded: 0.5,
            float_pool: 0.1,
            on_call: 0.05,
            municipal_other_unit: 0.3,
            mass_casualty: 1.0,
            d_numbers: 0.03,
            students: 0.05,
            booking: 0.15,
            quality_review: 0.05,
            resends: 0.01,
            rosters: 0.5,
        }
    }
}

impl Confounders {
    /// None of them: every event names its unit, every record of work exists.
    pub fn none() -> Self {
        Confounders {
            unit_missing: 0.0,
            hpr_only_staff: 0.0,
            address_variants: 0.0,
            service_work: 0.0,
            orders_recorded: 0.0,
            float_pool: 0.0,
            on_call: 0.0,
            municipal_other_unit: 0.0,
            mass_casualty: 0.0,
            d_numbers: 0.0,
            students: 0.0,
            booking: 0.0,
            quality_review: 0.0,
            resends: 0.0,
            rosters: 0.0,
        }
    }

    /// Every confounder by its command-line name: the one list `set` looks names up in and
    /// names in its errors.
    fn by_name(&mut self) -> [(&'static str, &mut f64); 15] {
        [
            ("unit_missing", &mut self.unit_missing),
            ("hpr_only_staff", &mut self.hpr_only_staff),
            ("address_variants", &mut self.address_variants),
            ("service_work", &mut self.service_work),
            ("orders_recorded", &mut self.orders_recorded),
            ("float_pool", &mut self.float_pool),
            ("on_call", &mut self.on_call),
            ("municipal_other_unit", &mut self.municipal_other_unit),
            ("mass_casualty", &mut self.mass_casualty),
            ("d_numbers", &mut self.d_numbers),
            ("students", &mut self.students),
            ("booking", &mut self.booking),
            ("quality_review", &mut self.quality_review),
            ("resends", &mut self.resends),
            ("rosters", &mut self.rosters),
        ]
    }

    /// Sets one by name (`unit_missing=0.5`), for the command line.
    pub fn set(&mut self, assignment: &str) -> Result<(), BadConfounder> {
        let (name, value) = assignment.split_once('=').ok_or_else(|| BadConfounder::NotAnAssignment(assignment.to_owned()))?;
        let share: f64 = value.trim().parse().map_err(|_| BadConfounder::Share(assignment.to_owned()))?;
        if !(0.0..=1.0).contains(&share) {
            return Err(BadConfounder::Share(assignment.to_owned()));
        }
        let name = name.trim();
        let mut fields = self.by_name();
        let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        let Some((_, field)) = fields.iter_mut().find(|(n, _)| *n == name) else {
            return Err(BadConfounder::Unknown { name: name.to_owned(), known: known.join(", ") });
        };
        let value = share;
        **field = value;
        Ok(())
    }
}

/// Why a `--confounder NAME=SHARE` was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadConfounder {
    #[error("'{0}': expected NAME=SHARE")]
    NotAnAssignment(String),
    #[error("'{0}': the share must be a number from 0 to 1")]
    Share(String),
    #[error("unknown confounder '{name}'; known: {known}")]
    Unknown { name: String, known: String },
}

/// The role of students under supervision: on care teams, never recorded as taking part.
const STUDENT_ROLE: &str = "STUDENT";

/// Share of care episodes whose first access follows a search by name (a new patient
/// not yet on a work list): the legitimate side of the search-then-read pattern.
const NAME_SEARCH_SHARE: f64 = 0.1;

/// Units the hospital gains for service work: laboratory, radiology and pharmacy, whose
/// staff open the records of other units' patients, and the float pool.
const SERVICE_UNITS: &[&str] = &["Laboratoriemedisin", "Radiologi", "Sykehusapotek"];
const FLOAT_POOL_UNIT: &str = "Bemanningssenteret";
/// The central booking office and the quality-improvement unit: like the service units,
/// no stays of their own; their staff open other units' patients.
const BOOKING_UNIT: &str = "Pasientkontoret";
const QUALITY_UNIT: &str = "Kvalitet og pasientsikkerhet";

/// An order or result that explains service work, in the hospital's context.
#[derive(Debug, Clone)]
pub struct Order {
    pub patient: usize,
    /// Index of the performing unit in the hospital (organisation 0).
    pub unit: usize,
    /// The employee who performed it, where the resource names one.
    pub performer: Option<usize>,
    /// Seconds since 1970.
    pub at: i64,
}

const MUNICIPALITIES: &[(&str, &str, u32, f64)] = &[("Midtfjord", "5055", 7010, 0.5), ("Nordvik", "5056", 7650, 0.3), ("Sørås", "5057", 7340, 0.2)];
const STREET_NAMES: &[&str] = &[
    "Storgata",
    "Kirkegata",
    "Skolegata",
    "Fjordveien",
    "Bjørkeveien",
    "Granveien",
    "Solbakken",
    "Strandveien",
    "Parkveien",
    "Elvegata",
    "Kongens gate",
    "Dronningens gate",
    "Industriveien",
    "Nedre Bakklandet",
    "Furuveien",
    "Lønneveien",
    "Tunveien",
    "Havnegata",
    "Jernbanegata",
    "Myrveien",
    "Lyngveien",
    "Rognveien",
    "Åsveien",
    "Sjøgata",
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
    /// The unit it is registered at.
    pub unit: usize,
    /// The unit whose staff give the care (another unit of a municipality can register
    /// its service decisions).
    pub given_by: usize,
    pub participants: Vec<usize>,
    /// Seconds since 1970.
    pub start: i64,
    pub end: Option<i64>,
    /// When an appointment was booked (Appointment.created), where that is known.
    pub created: Option<i64>,
}

/// One generated access, before it is written as an AuditEvent.
#[derive(Debug, Clone)]
struct Planned {
    second: i64,
    employee: usize,
    patient: Option<usize>,
    kind: AccessKind,
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
    /// Orders and results behind service work (written as ServiceRequest, DiagnosticReport
    /// or MedicationRequest by the performing unit's kind).
    pub orders: Vec<Order>,
    /// Staff whose Practitioner carries no person id.
    pub hpr_only: Vec<bool>,
    /// Nights a doctor covered another unit of the hospital on call: (employee, unit
    /// covered, start of the night in seconds), eight hours each.
    pub on_call_nights: Vec<(usize, usize, i64)>,
    pub confounders: Confounders,
    /// Weeks of accesses generated before the week.
    pub history_weeks: u32,
    /// The hospital's service units (laboratory, radiology, pharmacy) and float pool.
    service_units: Vec<usize>,
    float_pool_unit: Option<usize>,
    booking_unit: Option<usize>,
    quality_unit: Option<usize>,
    pub week_start: i64,
    accesses: Vec<Planned>,
    /// Active staff by (organisation, unit) and by organisation, once staffing is settled.
    staff_by_unit: HashMap<(usize, usize), Vec<usize>>,
    staff_by_org: Vec<Vec<usize>>,
    /// Care evidence by patient, once it is all generated.
    care_by_patient: HashMap<usize, Vec<usize>>,
    /// (person, relative) for current family links, once the population is settled.
    kin: HashSet<(usize, usize)>,
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
    /// Generates the region and its week of accesses (no weeks before it, so no snooping
    /// spread over weeks), with every confounder on, deterministically for `seed`.
    /// `week_start` is a Monday 00:00 UTC in seconds.
    pub fn generate(seed: u64, scale: RegionScale, week_start: i64) -> Region {
        Region::generate_with(seed, scale, week_start, Confounders::default(), 0)
    }

    /// [`Region::generate`] with the confounders chosen, and `history_weeks` weeks of
    /// accesses before the week (the lookback a weekly review reads): ongoing municipal
    /// care followed week after week, and snooping spread over those weeks.
    pub fn generate_with(seed: u64, scale: RegionScale, week_start: i64, confounders: Confounders, history_weeks: u32) -> Region {
        let (persons, staff, accesses, cases) = scale.sizes();
        let mut rng = Rng::new(seed ^ 0x5EED_4E61_0000);
        let mut orgs = organisations(&mut rng);
        let mut service_units = Vec::new();
        let mut float_pool_unit = None;
        if confounders.service_work > 0.0 {
            for name in SERVICE_UNITS {
                service_units.push(orgs[0].units.len());
                orgs[0].units.push((format!("{}", 4_000_000 + rng.below(999_999)), (*name).to_owned()));
            }
        }
        if confounders.float_pool > 0.0 {
            float_pool_unit = Some(orgs[0].units.len());
            orgs[0].units.push((format!("{}", 4_000_000 + rng.below(999_999)), FLOAT_POOL_UNIT.to_owned()));
        }
        // Their RESH ids are drawn from a number alone, so adding them leaves the seeded
        // stream (and the rest of the region) as it was.
        let mut office = |share: f64, name: &str, n: u64| {
            (share > 0.0).then(|| {
                orgs[0].units.push((format!("{}", 4_000_000 + (share_draw(n) * 999_999.0) as u64), name.to_owned()));
                orgs[0].units.len() - 1
            })
        };
        let booking_unit = office(confounders.booking, BOOKING_UNIT, 0xB00C);
        let quality_unit = office(confounders.quality_review, QUALITY_UNIT, 0x0C1A);
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
            orders: Vec::new(),
            hpr_only: Vec::new(),
            on_call_nights: Vec::new(),
            confounders,
            history_weeks,
            service_units,
            float_pool_unit,
            booking_unit,
            quality_unit,
            week_start,
            accesses: Vec::new(),
            staff_by_unit: HashMap::new(),
            staff_by_org: Vec::new(),
            care_by_patient: HashMap::new(),
            kin: HashSet::new(),
        };
        region.populate(&mut rng, persons);
        for (i, p) in region.persons.iter_mut().enumerate() {
            if share_draw(0xD0_0000 ^ i as u64) < region.confounders.d_numbers {
                if let Some(dnr) = crate::d_number(&p.fnr) {
                    p.fnr = dnr;
                }
            }
        }
        // Current family links, settled now: nobody's legitimate work is on their own family.
        region.kin = region.relations.iter().filter(|r| r.to.is_none()).map(|r| (r.person, r.related)).collect();
        region.hire(&mut rng, staff);
        region.leavers(&mut rng, cases);
        region.index_staff();
        region.historical_care(&mut rng);
        region.legitimate_work(&mut rng, accesses);
        region.work_in_shifts();
        if region.confounders.mass_casualty > 0.0 && rng.chance(region.confounders.mass_casualty) {
            region.mass_casualty_day(&mut rng);
        }
        region.ongoing_care_history(&mut rng);
        for (i, c) in region.care.iter().enumerate() {
            region.care_by_patient.entry(c.patient).or_default().push(i);
        }
        region.inject_snooping(&mut rng, cases);
        region.choose_hpr_only(&mut rng);
        region.accesses.sort_by_key(|a| a.second);
        region
    }

    /// Staff known by HPR number alone. Not among the injected snoopers: the relationship
    /// detectors need a person id to compare registers, and the labels promise a case
    /// each detector can find.
    fn choose_hpr_only(&mut self, rng: &mut Rng) {
        let snoopers: HashSet<usize> = self.accesses.iter().filter(|a| a.label.is_some()).map(|a| a.employee).collect();
        self.hpr_only = (0..self.employees.len()).map(|e| !snoopers.contains(&e) && self.confounders.hpr_only_staff > 0.0 && rng.chance(self.confounders.hpr_only_staff)).collect();
    }

    /// Nobody works on their own or their family's care: legitimate work skips them.
    fn own_or_family(&self, employee: usize, patient: usize) -> bool {
        let me = self.employee_person[employee];
        me == patient || self.kin.contains(&(me, patient))
    }

    fn is_service_unit(&self, org: usize, unit: usize) -> bool {
        org == 0 && (self.service_units.contains(&unit) || [self.float_pool_unit, self.booking_unit, self.quality_unit].contains(&Some(unit)))
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
                    self.dwellings.push(Dwelling { street: street.to_owned(), municipality, number, letter, unit: Some(format!("H{floor:02}{unit:02}")) });
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
            if org == 0 && share_draw(0x57_0000 ^ i as u64) < self.confounders.students {
                self.employees[i].role = STUDENT_ROLE;
            }
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
                if self.is_service_unit(0, unit) {
                    // Stays are on wards; service units work on other units' stays.
                    continue;
                }
                let participants = self.team(rng, 0, unit, 3);
                let start = self.week_start - (60 + rng.below(600) as i64) * DAY;
                let end = start + (1 + rng.below(10) as i64) * DAY;
                self.care.push(Care { kind: CareKind::Encounter, patient, org: 0, unit, given_by: unit, participants, start, end: Some(end), created: None });
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
        let mut planned = 0usize;
        while planned < target {
            let org = pick_weighted(rng, [0.65, 0.12, 0.1, 0.07, 0.06].into_iter());
            let unit = rng.below(self.orgs[org].units.len() as u64) as usize;
            if self.is_service_unit(org, unit) {
                // Service units have no stays of their own; they work on other units' stays.
                continue;
            }
            let size = 2 + rng.below(4) as usize;
            let team = self.team(rng, org, unit, size);
            if team.is_empty() {
                continue;
            }
            let patient = rng.below(self.persons.len() as u64) as usize;
            if team.iter().any(|&e| self.own_or_family(e, patient)) {
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
            // Students work under supervision and are never recorded.
            let mut participants: Vec<usize> = team.iter().copied().filter(|_| !rng.chance(0.15)).filter(|&e| self.employees[e].role != STUDENT_ROLE).collect();
            if kind == CareKind::Appointment && participants.is_empty() {
                // An appointment is booked with someone (Appointment.participant is 1..*);
                // it names its organisation only through that role.
                participants.push(team[0]);
            }
            let units = self.orgs[org].units.len();
            let mut registered = unit;
            if matches!(org, 1 | 2) && units > 1 && self.confounders.municipal_other_unit > 0.0 && rng.chance(self.confounders.municipal_other_unit) {
                // The service decision is registered by another unit of the municipality
                // (its allocation office), with nobody from the unit that gives the care.
                registered = (unit + 1 + rng.below(units as u64 - 1) as usize) % units;
                participants.clear();
            }
            self.care.push(Care { kind, patient, org, unit: registered, given_by: unit, participants, start, end, created: None });
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
                        if self.employees[other].unit != unit && !self.own_or_family(other, patient) {
                            employee = other;
                            break;
                        }
                    }
                }
                if second < self.week_start || second >= week_end {
                    continue;
                }
                if i == 0 && rng.chance(NAME_SEARCH_SHARE) {
                    // A new patient, found by name before the record is opened.
                    let searched = second - 60 - rng.below(540) as i64;
                    self.accesses.push(Planned { second: searched, employee, patient: None, kind: AccessKind::NameSearch, label: None });
                }
                self.accesses.push(Planned { second, employee, patient: Some(patient), kind: if btg { AccessKind::BreakGlass } else { AccessKind::Normal }, label: None });
                planned += 1;
            }
            if org == 0 {
                planned += self.work_without_encounter(rng, patient, unit, start, end.unwrap_or(week_end));
                planned += self.booking_and_review(rng, patient, unit, team[0], start, end);
            }
            if rng.chance(0.05) {
                let e = team[0];
                let second = from.clamp(self.week_start, week_end - 1);
                self.accesses.push(Planned { second, employee: e, patient: None, kind: AccessKind::Normal, label: None });
            }
        }
    }

    /// A mass-casualty day: a bus crash brings 8–12 patients to the emergency department
    /// within the hour. Staff from across the hospital open their records over the next
    /// hours; the admissions are registered 2–7 hours after the first look, with only the
    /// emergency team on them.
    fn mass_casualty_day(&mut self, rng: &mut Rng) {
        let Some(ed) = self.orgs[0].units.iter().position(|(_, name)| name == "Akuttmottak") else { return };
        let hospital: Vec<usize> =
            self.active_staff(0, None).iter().copied().filter(|&e| self.employees[e].unit != ed && !self.is_service_unit(0, self.employees[e].unit)).collect();
        if hospital.is_empty() || self.active_staff(0, Some(ed)).is_empty() {
            return;
        }
        let arrival = self.week_start + rng.below(6) as i64 * DAY + 11 * HOUR + rng.below(4 * HOUR as u64) as i64;
        let helpers: Vec<usize> = (0..12).map(|_| hospital[rng.below(hospital.len() as u64) as usize]).collect();
        for _ in 0..8 + rng.below(5) {
            let patient = rng.below(self.persons.len() as u64) as usize;
            let team = self.team(rng, 0, ed, 3);
            let start = arrival + (2 + rng.below(5) as i64) * HOUR;
            let end = start + (1 + rng.below(3) as i64) * DAY;
            let mut planned = Vec::new();
            for &e in &team {
                for _ in 0..2 {
                    planned.push((e, arrival + rng.below(6 * HOUR as u64) as i64));
                }
            }
            for &e in &helpers {
                if rng.chance(0.6) {
                    planned.push((e, arrival + rng.below(6 * HOUR as u64) as i64));
                }
            }
            self.care.push(Care { kind: CareKind::Encounter, patient, org: 0, unit: ed, given_by: ed, participants: team, start, end: Some(end), created: None });
            self.add_work(patient, planned);
        }
    }

    /// Adds legitimate accesses to `patient` (employee, second) that fall in the week,
    /// leaving out anyone's own or family's record; returns how many were added.
    fn add_work(&mut self, patient: usize, planned: Vec<(usize, i64)>) -> usize {
        let week = self.week_start..self.week_start + 7 * DAY;
        let before = self.accesses.len();
        for (employee, second) in planned {
            if week.contains(&second) && !self.own_or_family(employee, patient) {
                self.accesses.push(Planned { second, employee, patient: Some(patient), kind: AccessKind::Normal, label: None });
            }
        }
        self.accesses.len() - before
    }

    /// The weeks before: every episode of care that was open then was followed then too,
    /// by the staff of the unit that gives it (the pairs a slow-pattern detector must not
    /// take for snooping).
    fn ongoing_care_history(&mut self, rng: &mut Rng) {
        for w in 1..=self.history_weeks as i64 {
            let week = self.week_start - w * 7 * DAY;
            for i in 0..self.care.len() {
                let c = &self.care[i];
                if c.kind != CareKind::EpisodeOfCare || c.start >= week + 7 * DAY {
                    continue;
                }
                let (org, unit, patient, start) = (c.org, c.given_by, c.patient, c.start);
                let staff = self.active_staff(org, Some(unit)).len();
                if staff == 0 {
                    continue;
                }
                for _ in 0..1 + rng.below(4) {
                    let employee = self.active_staff(org, Some(unit))[rng.below(staff as u64) as usize];
                    if self.own_or_family(employee, patient) {
                        continue;
                    }
                    let day = rng.below(7) as i64;
                    let second = self.daytime(rng, day) - w * 7 * DAY;
                    if second >= start {
                        self.accesses.push(Planned { second, employee, patient: Some(patient), kind: AccessKind::Normal, label: None });
                    }
                }
            }
        }
    }

    /// Work on a hospital stay that leaves no encounter of its own: laboratory, radiology
    /// and pharmacy staff (with an order or result in the context, or without), a nurse
    /// from the float pool, a doctor on call at night from another unit. Returns the
    /// accesses added.
    fn work_without_encounter(&mut self, rng: &mut Rng, patient: usize, unit: usize, from: i64, to: i64) -> usize {
        let c = self.confounders;
        let span = (to - from).max(HOUR) as u64;
        let mut planned = Vec::new();
        if !self.service_units.is_empty() && rng.chance(c.service_work) {
            let service = self.service_units[rng.below(self.service_units.len() as u64) as usize];
            let staff = self.active_staff(0, Some(service));
            if !staff.is_empty() {
                let e = staff[rng.below(staff.len() as u64) as usize];
                let at = from + rng.below(span) as i64;
                if rng.chance(c.orders_recorded) {
                    let performer = rng.chance(0.5).then_some(e);
                    self.orders.push(Order { patient, unit: service, performer, at: at - rng.below(2 * HOUR as u64) as i64 });
                }
                for k in 0..1 + rng.below(3) as i64 {
                    planned.push((e, at + k * rng.below(6 * HOUR as u64) as i64));
                }
            }
        }
        if let Some(pool) = self.float_pool_unit.filter(|_| rng.chance(c.float_pool)) {
            let staff = self.active_staff(0, Some(pool));
            if !staff.is_empty() {
                let e = staff[rng.below(staff.len() as u64) as usize];
                for _ in 0..2 + rng.below(3) {
                    planned.push((e, from + rng.below(span) as i64));
                }
            }
        }
        if c.on_call > 0.0 && rng.chance(c.on_call) {
            let staff = self.active_staff(0, None);
            for _ in 0..8 {
                let e = staff[rng.below(staff.len() as u64) as usize];
                let (their_unit, role) = (self.employees[e].unit, self.employees[e].role);
                if their_unit != unit && role == "LEGE" && !self.is_service_unit(0, their_unit) {
                    // 22:00–06:00 local (UTC+1) on a night of the stay.
                    let night = (from + rng.below(span) as i64).div_euclid(DAY) * DAY + 21 * HOUR;
                    self.on_call_nights.push((e, unit, night));
                    for _ in 0..1 + rng.below(2) {
                        planned.push((e, night + rng.below(8 * HOUR as u64) as i64));
                    }
                    break;
                }
            }
        }
        self.add_work(patient, planned)
    }

    /// The administrative side of a hospital stay: the booking office opening the record
    /// when it books the stay 1–20 days ahead (the Appointment, created then, is in the
    /// context), and a quality reviewer reading it 1–10 days after discharge.
    fn booking_and_review(&mut self, rng: &mut Rng, patient: usize, unit: usize, clinician: usize, start: i64, end: Option<i64>) -> usize {
        let c = self.confounders;
        let mut planned = Vec::new();
        if let Some(office) = self.booking_unit.filter(|_| rng.chance(c.booking)) {
            let staff = self.active_staff(0, Some(office));
            if !staff.is_empty() {
                let e = staff[rng.below(staff.len() as u64) as usize];
                let booked = start - (1 + rng.below(20) as i64) * DAY + rng.below(8 * HOUR as u64) as i64;
                planned.push((e, booked));
                let participants = if self.employees[clinician].role == STUDENT_ROLE { Vec::new() } else { vec![clinician] };
                self.care.push(Care { kind: CareKind::Appointment, patient, org: 0, unit, given_by: unit, participants, start, end: Some(start + 30 * 60), created: Some(booked) });
            }
        }
        if let (Some(quality), Some(end)) = (self.quality_unit, end) {
            let staff = self.active_staff(0, Some(quality));
            if !staff.is_empty() && rng.chance(c.quality_review) {
                let e = staff[rng.below(staff.len() as u64) as usize];
                planned.push((e, end + (1 + rng.below(10) as i64) * DAY + rng.below(8 * HOUR as u64) as i64));
            }
        }
        self.add_work(patient, planned)
    }

    /// Care that links `patient` to the employee's unit around the week.
    fn in_care(&self, patient: usize, employee: usize) -> bool {
        let e = &self.employees[employee];
        self.care_by_patient
            .get(&patient)
            .into_iter()
            .flatten()
            .map(|&i| &self.care[i])
            .any(|c| c.org == e.org && (c.unit == e.unit || c.participants.contains(&employee)) && c.end.is_none_or(|end| end > self.week_start - 30 * DAY))
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
            self.accesses.push(Planned { second, employee, patient: Some(patient), kind: AccessKind::Normal, label: Some((class, case)) });
        }
    }

    /// Plants `cases` cases of every snooping class, each by a different employee.
    fn inject_snooping(&mut self, rng: &mut Rng, cases: usize) {
        let mut used: HashSet<usize> = HashSet::new();
        let mut case_no = 0usize;
        let by_building = self.buildings();
        let protected: Vec<usize> = (0..self.persons.len()).filter(|&p| self.protected[p]).collect();
        // When each employee did their legitimate work (their shifts, where rosters are kept).
        let mut worked: HashMap<usize, Vec<i64>> = HashMap::new();
        for a in self.accesses.iter().filter(|a| a.label.is_none()) {
            worked.entry(a.employee).or_default().push(a.second);
        }
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
                    "protected_address" => (!protected.is_empty()).then(|| protected[rng.below(protected.len() as u64) as usize]).filter(|&p| !self.in_care(p, e) && p != me),
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
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), kind: AccessKind::BreakGlass, label: Some((class, case_no)) });
                        }
                    }
                    "spread_over_weeks" if self.history_weeks >= 3 => {
                        // One look a week at the same patient, for weeks: never more than one
                        // weak trace in any single week.
                        let p = self.unrelated_patient(rng, e);
                        let weeks = 3 + rng.below(u64::from(self.history_weeks.min(8)) - 2) as i64;
                        for w in 0..weeks {
                            let day = rng.below(5) as i64;
                            let second = self.daytime(rng, day) - w * 7 * DAY;
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), kind: AccessKind::Normal, label: Some((class, case_no)) });
                        }
                    }
                    "spread_over_weeks" => break,
                    "search_then_read" => {
                        // Found by name, opened once: a person the employee knows, on no work list.
                        let p = self.unrelated_patient(rng, e);
                        let day = rng.below(5) as i64;
                        let second = self.daytime(rng, day);
                        let searched = second - 30 - rng.below(570) as i64;
                        self.accesses.push(Planned { second: searched, employee: e, patient: None, kind: AccessKind::NameSearch, label: Some((class, case_no)) });
                        self.accesses.push(Planned { second, employee: e, patient: Some(p), kind: AccessKind::Normal, label: Some((class, case_no)) });
                    }
                    "btg_pretext" => {
                        // Self-authorised once or twice, with a plausible reason, for a
                        // patient no care of theirs will ever explain.
                        let p = self.unrelated_patient(rng, e);
                        let day = rng.below(7) as i64;
                        for _ in 0..1 + rng.below(2) {
                            let second = self.daytime(rng, day);
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), kind: AccessKind::BreakGlass, label: Some((class, case_no)) });
                        }
                    }
                    "off_duty" => {
                        // A patient on one's own ward, opened from home on an evening off:
                        // explained by the unit's care, but the roster had them off duty and
                        // they never took part in the patient's care.
                        let Some((p, t)) = self.off_duty_look(rng, e, worked.get(&e).map_or(&[][..], Vec::as_slice)) else { continue };
                        self.accesses.push(Planned { second: t, employee: e, patient: Some(p), kind: AccessKind::Normal, label: Some((class, case_no)) });
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
                            self.accesses.push(Planned { second, employee: e, patient: Some(p), kind: AccessKind::Normal, label: Some((class, case_no)) });
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
                            self.accesses.push(Planned { second, employee: s, patient: Some(p), kind: AccessKind::Normal, label: Some((class, case_no)) });
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

    /// Whether the hospital's roster of this unit is in the context (a draw from the unit
    /// alone, so it does not move the seeded stream).
    fn rostered_unit(&self, org: usize, unit: usize) -> bool {
        org == 0 && share_draw(0x0005_7E12 ^ unit as u64) < self.confounders.rosters
    }

    /// The on-call nights in a roster (of the unit covered), by doctor.
    fn rostered_nights(&self) -> HashMap<usize, Vec<i64>> {
        let mut nights: HashMap<usize, Vec<i64>> = HashMap::new();
        for &(e, unit, night) in &self.on_call_nights {
            if self.rostered_unit(0, unit) {
                nights.entry(e).or_default().push(night);
            }
        }
        nights
    }

    /// Staff of rostered units work shifts: each keeps to one shift of the day (07–15,
    /// 15–23 or 23–07 local, by a draw from the employee) on five days of seven, and their
    /// legitimate work is moved into the nearest of their shifts in the same week, at the
    /// same point of the shift (so a search and the read after it stay together). Work in an
    /// on-call night covering another rostered unit keeps its time.
    fn work_in_shifts(&mut self) {
        let nights = self.rostered_nights();
        let week = |t: i64| (t - self.week_start).div_euclid(7 * DAY);
        for i in 0..self.accesses.len() {
            let (employee, t) = (self.accesses[i].employee, self.accesses[i].second);
            let e = &self.employees[employee];
            if !self.rostered_unit(e.org, e.unit) || nights.get(&employee).is_some_and(|n| n.iter().any(|&night| (night..night + 8 * HOUR).contains(&t))) {
                continue;
            }
            let offset = (t - shift_start(t)).rem_euclid(8 * HOUR);
            let nearest = (-3..=3)
                .map(|k| own_shift_start(employee, t.div_euclid(DAY) + k))
                .filter(|&start| works_on(employee, start.div_euclid(DAY)) && week(start) == week(t))
                .min_by_key(|&start| (start + offset - t).abs());
            if let Some(start) = nearest {
                self.accesses[i].second = start + offset;
            }
        }
    }

    /// For an off-duty look by `employee`: a patient in care on their own rostered ward in
    /// the week, whose care they took no part in, and a time in that stay at least ten
    /// hours from any of their legitimate work (so outside every shift the roster gives
    /// them, grace included).
    fn off_duty_look(&self, rng: &mut Rng, employee: usize, worked: &[i64]) -> Option<(usize, i64)> {
        let e = &self.employees[employee];
        let week = (self.week_start, self.week_start + 7 * DAY);
        if !self.rostered_unit(e.org, e.unit) || !worked.iter().any(|&t| t >= week.0) {
            return None;
        }
        let stays: Vec<&Care> = self
            .care
            .iter()
            .filter(|c| c.org == e.org && c.unit == e.unit && c.kind == CareKind::Encounter && c.start < week.1 && c.end.is_none_or(|end| end > week.0))
            .filter(|c| !self.own_or_family(employee, c.patient))
            .filter(|c| !self.care_by_patient.get(&c.patient).into_iter().flatten().any(|&i| self.care[i].participants.contains(&employee)))
            .collect();
        if stays.is_empty() {
            return None;
        }
        let stay = stays[rng.below(stays.len() as u64) as usize];
        let (from, to) = (stay.start.max(week.0), stay.end.unwrap_or(week.1).min(week.1));
        for _ in 0..50 {
            let t = from + rng.below((to - from).max(1) as u64) as i64;
            if worked.iter().all(|&w| (w - t).abs() >= 10 * HOUR) {
                return Some((stay.patient, t));
            }
        }
        None
    }

    /// The shifts in the rosters the context carries: for each rostered unit, the shifts
    /// (07–15, 15–23, 23–07 local) in which its staff did legitimate work, and the nights a
    /// doctor from another unit covered it on call. (employee, unit, start, end) in seconds.
    pub fn duties(&self) -> Vec<(usize, usize, i64, i64)> {
        let mut shifts = std::collections::BTreeSet::new();
        let nights = self.rostered_nights();
        let covering = |employee: usize, t: i64| nights.get(&employee).is_some_and(|n| n.iter().any(|&night| (night..night + 8 * HOUR).contains(&t)));
        for a in self.accesses.iter().filter(|a| a.label.is_none()) {
            let e = &self.employees[a.employee];
            if !self.rostered_unit(e.org, e.unit) || covering(a.employee, a.second) {
                continue;
            }
            let start = shift_start(a.second);
            shifts.insert((a.employee, e.unit, start, start + 8 * HOUR));
        }
        for &(e, unit, night) in &self.on_call_nights {
            if self.rostered_unit(0, unit) {
                shifts.insert((e, unit, night, night + 8 * HOUR));
            }
        }
        shifts.into_iter().collect()
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
        let style = EventStyle { r5_share: 0.3, role_reference_share: 0.1, unit_missing_share: self.confounders.unit_missing };
        let mut rng = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut buf = String::with_capacity(4096);
        let mut injected = 0;
        // Events a source sends again later, with the line number they are due at: drawn
        // from a stream of their own, so the events themselves stay as they were.
        let mut resend_rng = Rng::new(seed ^ 0x2E5E_4D00);
        let mut resends: std::collections::VecDeque<(usize, String)> = std::collections::VecDeque::new();
        for (n, a) in self.accesses.iter().enumerate() {
            while resends.front().is_some_and(|(due, _)| *due <= n) {
                if let Some((_, line)) = resends.pop_front() {
                    ev.write_all(line.as_bytes())?;
                }
            }
            buf.clear();
            let e = &self.employees[a.employee];
            let patient = a.patient.map(|p| self.persons[p].fnr.as_str());
            let id = write_audit_event(&self.orgs[e.org], e, patient, a.second, rng.below(10_000_000), a.kind, &style, &mut rng, &mut buf);
            buf.push('\n');
            ev.write_all(buf.as_bytes())?;
            if self.confounders.resends > 0.0 && resend_rng.chance(self.confounders.resends) {
                resends.push_back((n + 20 + resend_rng.below(500) as usize, buf.clone()));
            }
            if let Some((class, case)) = a.label {
                writeln!(lab, "{id},{class},case-{case:04},{},{}", e.hpr, patient.unwrap_or(""))?;
                injected += 1;
            }
        }
        for (_, line) in resends {
            ev.write_all(line.as_bytes())?;
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
                let _ = write!(
                    b,
                    r#"{{"resourceType":"Organization","id":"org-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.101","value":"{0}"}}],"name":"{1}"}}"#,
                    org.orgnr, org.name
                );
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
                let _ = write!(
                    b,
                    r#","identifier":[{{"system":"{}","value":"{}"}}],"name":[{{"family":"{}","given":["{}"]}}]"#,
                    crate::person_id_system(&p.fnr),
                    p.fnr,
                    p.family,
                    p.given
                );
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
                    r#"{{"resourceType":"RelatedPerson","id":"rel-{i}","patient":{{"reference":"Patient/p-{}"}},"identifier":[{{"system":"{}","value":"{}"}}],"relationship":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/v3-RoleCode","code":"{}"}}]}}]"#,
                    r.person,
                    crate::person_id_system(&self.persons[r.related].fnr),
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
                let _ = write!(b, r#"{{"resourceType":"Practitioner","id":"pr-{0}","identifier":[{{"system":"urn:oid:2.16.578.1.12.4.1.4.4","value":"{0}"}}"#, e.hpr);
                if !self.hpr_only.get(i).copied().unwrap_or(false) {
                    let _ = write!(b, r#",{{"system":"{}","value":"{}"}}"#, crate::person_id_system(&e.person.fnr), e.person.fnr);
                }
                let _ = write!(b, r#"],"name":[{{"family":"{}","given":["{}"]}}]"#, e.person.family, e.person.given);
                // The staff register spells some homes otherwise than the population register.
                let variant = (share_draw(i as u64) < self.confounders.address_variants).then_some(i % 4);
                self.write_addresses_spelled(self.employee_person[i], variant, b);
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
                    e.role_id, e.hpr, self.orgs[e.org].units[e.unit].0, e.role
                );
                write_date_period(b, from, to);
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        // Orders and results, by what the performing unit does: the laboratory's orders, the
        // radiologists' reports, the pharmacy's prescriptions to dispense.
        for (service, name) in SERVICE_UNITS.iter().zip(["ServiceRequest", "DiagnosticReport", "MedicationRequest"]) {
            file(name, &mut |b, emit| {
                for (i, o) in self.orders.iter().enumerate().filter(|(_, o)| self.orgs[0].units[o.unit].1 == *service) {
                    b.clear();
                    self.write_order(i, o, name, b);
                    emit(b)?;
                }
                Ok(())
            })?;
        }
        // Rosters: a Schedule per person and unit (the role, and for cover of another unit
        // that unit's on-call service), a Slot per shift.
        let duties = self.duties();
        let mut rosters: Vec<(usize, usize)> = duties.iter().map(|&(e, unit, _, _)| (e, unit)).collect();
        rosters.dedup();
        let covered: std::collections::BTreeSet<usize> = rosters.iter().filter(|&&(e, unit)| self.employees[e].unit != unit).map(|&(_, unit)| unit).collect();
        file("HealthcareService", &mut |b, emit| {
            for &unit in &covered {
                let (resh, name) = &self.orgs[0].units[unit];
                b.clear();
                let _ = write!(
                    b,
                    r#"{{"resourceType":"HealthcareService","id":"hs-{resh}","active":true,"providedBy":{{"reference":"Organization/unit-{resh}"}},"name":"Vakt {name}"}}"#
                );
                emit(b)?;
            }
            Ok(())
        })?;
        file("Schedule", &mut |b, emit| {
            for &(e, unit) in &rosters {
                let role = &self.employees[e].role_id;
                b.clear();
                let _ = write!(b, r#"{{"resourceType":"Schedule","id":"sch-{e}-{unit}","active":true,"actor":[{{"reference":"PractitionerRole/{role}"}}"#);
                if self.employees[e].unit != unit {
                    let _ = write!(b, r#",{{"reference":"HealthcareService/hs-{}"}}],"serviceType":[{{"text":"Tilstedevakt"}}]"#, self.orgs[0].units[unit].0);
                } else {
                    b.push(']');
                }
                b.push('}');
                emit(b)?;
            }
            Ok(())
        })?;
        file("Slot", &mut |b, emit| {
            for (i, &(e, unit, start, end)) in duties.iter().enumerate() {
                b.clear();
                let _ = write!(
                    b,
                    r#"{{"resourceType":"Slot","id":"slot-{i}","schedule":{{"reference":"Schedule/sch-{e}-{unit}"}},"status":"busy","start":"{}","end":"{}"}}"#,
                    instant(start),
                    instant(end)
                );
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
            let unit_missing = self.confounders.unit_missing > 0.0 && rng.chance(self.confounders.unit_missing);
            let btg = a.kind == AccessKind::BreakGlass;
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
                unit_id: (!unit_missing).then(|| unit_id.clone()),
                unit_name: (!unit_missing).then(|| unit_name.clone()),
                role_code: Some(e.role.to_owned()),
                patient_id_kind: patient.as_ref().map(|p| if crate::person_id_system(p).ends_with(".2") { "dnr" } else { "fnr" }.to_owned()),
                record_part: patient.as_ref().map(|_| "DocumentReference".to_owned()),
                document_id: patient.as_ref().map(|_| format!("DocumentReference/{}", rng.below(10_000_000))),
                patient_id: patient,
                action: match (a.patient.is_some(), a.kind) {
                    (true, _) => actions::READ,
                    (false, AccessKind::NameSearch) => actions::SEARCH,
                    (false, _) => actions::LOGIN,
                }
                .to_owned(),
                action_code: Some(if a.patient.is_some() { "R" } else { "E" }.to_owned()),
                basis: if btg { basis::SELF_AUTHORISATION } else { basis::NORMAL }.to_owned(),
                purpose_code: a.patient.map(|_| if btg { "BTG" } else { "TREAT" }.to_owned()),
                channel: channel::DESKTOP.to_owned(),
                outcome: outcome::GRANTED.to_owned(),
                source_format: "fhir-r4".to_owned(),
                ..Default::default()
            };
            (event, a.label.map(|(class, _)| class))
        })
    }

    fn write_addresses(&self, person: usize, b: &mut String) {
        self.write_addresses_spelled(person, None, b);
    }

    /// Addresses as the population register writes them, or in one of four other
    /// spellings of the same home: 0 street type abbreviated, 1 upper case, 2 apartment
    /// as "leil. 203", 3 house letter dropped (each falls back to the one before where
    /// the address has no apartment or letter).
    fn write_addresses_spelled(&self, person: usize, variant: Option<usize>, b: &mut String) {
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
            let (street, letter, unit) = spell(&d.street, &letter, d.unit.as_deref(), variant);
            let _ = write!(b, r#"{{"use":"{}","type":"physical","line":["{street} {}{letter}""#, if s.to.is_none() { "home" } else { "old" }, d.number);
            if let Some(unit) = unit {
                let _ = write!(b, r#","{unit}""#);
            }
            let _ = write!(b, r#"],"city":"{m}","district":"{m}","postalCode":"{}","country":"NO""#, postcode + d.number % 7);
            write_date_period(b, s.from, s.to);
            b.push('}');
        }
        b.push(']');
    }

    fn write_order(&self, i: usize, o: &Order, resource_type: &str, b: &mut String) {
        let unit = format!(r#"{{"reference":"Organization/unit-{}"}}"#, self.orgs[0].units[o.unit].0);
        let performer = match o.performer {
            Some(e) => format!(r#"{{"reference":"PractitionerRole/{}"}}"#, self.employees[e].role_id),
            None => unit.clone(),
        };
        let patient = format!(r#"{{"reference":"Patient/p-{}"}}"#, o.patient);
        let at = instant(o.at);
        let _ = match resource_type {
            "ServiceRequest" => write!(
                b,
                r#"{{"resourceType":"ServiceRequest","id":"sr-{i}","status":"completed","intent":"order","code":{{"text":"Blodprøver"}},"subject":{patient},"authoredOn":"{at}","performer":[{performer}]}}"#
            ),
            "DiagnosticReport" => write!(
                b,
                r#"{{"resourceType":"DiagnosticReport","id":"dr-{i}","status":"final","code":{{"text":"Røntgen thorax"}},"subject":{patient},"effectiveDateTime":"{at}","issued":"{at}","performer":[{performer}]}}"#
            ),
            _ => write!(
                b,
                r#"{{"resourceType":"MedicationRequest","id":"mr-{i}","status":"active","intent":"order","medicationCodeableConcept":{{"text":"Legemiddel"}},"subject":{patient},"authoredOn":"{at}","dispenseRequest":{{"performer":{unit}}}}}"#
            ),
        };
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
                if let Some(created) = c.created {
                    let _ = write!(b, r#","created":"{}""#, instant(created));
                }
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

/// The start of the shift `t` falls in: shifts begin at 06, 14 and 22 UTC (07, 15 and 23
/// local in winter).
fn shift_start(t: i64) -> i64 {
    let day = t.div_euclid(DAY) * DAY;
    match t - day {
        h if h < 6 * HOUR => day - 2 * HOUR,
        h if h < 14 * HOUR => day + 6 * HOUR,
        h if h < 22 * HOUR => day + 14 * HOUR,
        _ => day + 22 * HOUR,
    }
}

/// The start of `employee`'s shift on `day` (days since 1970): day shifts for most, evening
/// or night for some, by a draw from the employee alone.
fn own_shift_start(employee: usize, day: i64) -> i64 {
    let kind = share_draw(0x5411_F700 ^ employee as u64);
    day * DAY
        + if kind < 0.6 {
            6 * HOUR
        } else if kind < 0.85 {
            14 * HOUR
        } else {
            22 * HOUR
        }
}

/// Whether `employee` works on `day`: five days of seven.
fn works_on(employee: usize, day: i64) -> bool {
    share_draw((employee as u64) << 20 ^ day as u64) >= 2.0 / 7.0
}

/// A number in [0, 1) drawn from `n` alone, for choices that must not move the seeded
/// stream (so adding a confounder leaves the rest of the region as it was).
fn share_draw(n: u64) -> f64 {
    let mut r = Rng::new(n.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// One home's street, house letter and apartment in the spelling `variant` (see
/// `write_addresses_spelled`); `None` is the population register's own.
fn spell(street: &str, letter: &str, unit: Option<&str>, variant: Option<usize>) -> (String, String, Option<String>) {
    let abbreviated = || {
        for (long, short) in [("gata", "gt."), ("gate", "gt."), ("veien", "vn.")] {
            if let Some(stem) = street.strip_suffix(long) {
                return Some(format!("{stem}{short}"));
            }
        }
        None
    };
    let same = (street.to_owned(), letter.to_owned(), unit.map(str::to_owned));
    match variant {
        None => same,
        Some(3) if !letter.is_empty() => (street.to_owned(), String::new(), unit.map(str::to_owned)),
        Some(2 | 3) if unit.is_some() => {
            // H0203 → "leil. 203": floor 2, unit 03.
            let u = unit.unwrap_or_default();
            let number = u.get(1..).unwrap_or("").trim_start_matches('0');
            (street.to_owned(), letter.to_owned(), Some(format!("leil. {number}")))
        }
        Some(0 | 2 | 3) if abbreviated().is_some() => (abbreviated().unwrap_or_default(), letter.to_owned(), unit.map(str::to_owned)),
        Some(_) => (street.to_uppercase(), letter.to_uppercase(), unit.map(str::to_owned)),
    }
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
        let region = Region::generate_with(3, RegionScale::Small, 1_794_700_800, Confounders::default(), 12);
        for class in SNOOPING_CLASSES {
            assert!(region.accesses.iter().any(|a| a.label.is_some_and(|(c, _)| c == *class)), "no injected case of {class}");
        }
        let legit = region.accesses.iter().filter(|a| a.label.is_none()).count();
        assert!(legit >= 15_000, "legitimate accesses: {legit}");
    }

    #[test]
    fn confounders_are_set_by_name_and_checked() {
        let mut c = Confounders::none();
        c.set("unit_missing=0.8").unwrap();
        assert_eq!(c.unit_missing, 0.8);
        assert!(c.set("unit_missing=1.5").unwrap_err().to_string().contains("from 0 to 1"));
        assert!(c.set("units_missing=0.5").unwrap_err().to_string().contains("known: unit_missing"));
        assert!(c.set("unit_missing").unwrap_err().to_string().contains("NAME=SHARE"));
    }

    #[test]
    fn the_clean_world_names_every_unit_and_has_no_service_work() {
        let region = Region::generate_with(5, RegionScale::Small, 1_794_700_800, Confounders::none(), 0);
        assert!(region.orders.is_empty());
        assert!(region.hpr_only.iter().all(|h| !h));
        assert!(region.access_events(5).all(|(e, _)| e.unit_id.is_some()));
        let messy = Region::generate(5, RegionScale::Small, 1_794_700_800);
        assert!(!messy.orders.is_empty() && messy.hpr_only.iter().any(|h| *h));
        let missing = messy.access_events(5).filter(|(e, _)| e.unit_id.is_none()).count();
        assert!(missing > messy.accesses.len() / 5, "{missing} events without a unit");
    }

    #[test]
    fn a_mass_casualty_day_brings_many_stays_registered_after_staff_from_other_units_opened_them() {
        let mut only = Confounders::none();
        only.mass_casualty = 1.0;
        let region = Region::generate_with(6, RegionScale::Small, 1_794_700_800, only, 0);
        let clean = Region::generate_with(6, RegionScale::Small, 1_794_700_800, Confounders::none(), 0);
        let ed = region.orgs[0].units.iter().position(|(_, n)| n == "Akuttmottak").unwrap();
        let victims: Vec<&Care> = region.care[clean.care.len()..].iter().collect();
        assert!((8..=12).contains(&victims.len()), "{} victims", victims.len());
        for c in &victims {
            assert_eq!((c.org, c.unit), (0, ed));
            let that_day: Vec<_> = region.accesses.iter().filter(|a| a.patient == Some(c.patient) && (c.start - 8 * HOUR..c.start + 6 * HOUR).contains(&a.second)).collect();
            assert!(that_day.iter().any(|a| a.second < c.start), "opened before the stay is registered");
            let helpers = that_day.iter().filter(|a| region.employees[a.employee].unit != ed).count();
            assert!(helpers >= 2, "staff from other units help: {helpers}");
        }
    }

    #[test]
    fn another_spelling_of_a_home_keeps_its_parts() {
        assert_eq!(spell("Storgata", "B", Some("H0203"), None), ("Storgata".into(), "B".into(), Some("H0203".into())));
        assert_eq!(spell("Storgata", "B", Some("H0203"), Some(0)).0, "Storgt.");
        assert_eq!(spell("Storgata", "B", None, Some(1)), ("STORGATA".into(), "B".into(), None));
        assert_eq!(spell("Storgata", "", Some("H1203"), Some(2)).2.as_deref(), Some("leil. 1203"));
        assert_eq!(spell("Storgata", "B", Some("H0203"), Some(3)), ("Storgata".into(), String::new(), Some("H0203".into())));
        assert_eq!(spell("Granveien", "", None, Some(3)).0, "Granvn.", "no letter to drop: abbreviated instead");
    }

    #[test]
    fn the_same_seed_gives_the_same_region() {
        let a = Region::generate(9, RegionScale::Small, 1_794_700_800);
        let b = Region::generate(9, RegionScale::Small, 1_794_700_800);
        assert_eq!(a.persons.iter().map(|p| &p.fnr).collect::<Vec<_>>(), b.persons.iter().map(|p| &p.fnr).collect::<Vec<_>>());
        assert_eq!(a.accesses.len(), b.accesses.len());
    }
}
