//! The verification report in Norwegian (bokmål), for the supervisory authorities who read it.
//! The kind of each problem and the summary are translated; each problem's specific
//! detail follows in English, as `--json` gives it.

use std::fmt;

use crate::report::{ProblemKind, Report};

impl ProblemKind {
    pub fn label_nb(self) -> &'static str {
        match self {
            ProblemKind::ModifiedRecord => "endret post",
            ProblemKind::MissingRecord => "manglende post",
            ProblemKind::DuplicateRecord => "duplisert post",
            ProblemKind::UnexpectedRecord => "innsatt post",
            ProblemKind::RowOrder => "rader omstokket",
            ProblemKind::WrongPartition => "rad i feil partisjon",
            ProblemKind::MissingSegment => "manglende segment",
            ProblemKind::UnexpectedSegment => "ukjent segment",
            ProblemKind::RenamedSegment => "omdøpt segment",
            ProblemKind::ModifiedFile => "endret fil",
            ProblemKind::MissingManifest => "manglende manifest",
            ProblemKind::ManifestMismatch => "manifest stemmer ikke",
            ProblemKind::ChainBreak => "brudd i kjeden",
            ProblemKind::CheckpointMismatch => "sjekkpunkt stemmer ikke",
            ProblemKind::UnsignedEpoch => "usignert epoke",
            ProblemKind::UntrustedSignature => "ikke-klarert signatur",
            ProblemKind::ForgedCheckpoint => "forfalsket sjekkpunkt",
            ProblemKind::Truncated => "avkortet",
            ProblemKind::RolledBack => "rullet tilbake",
            ProblemKind::Forked => "omskrevet historikk",
            ProblemKind::Unreadable => "uleselig",
            ProblemKind::ModifiedContext => "endret kontekst",
            ProblemKind::ModifiedIndex => "endret indeks",
        }
    }

    /// What the problem means, in one sentence.
    pub fn meaning_nb(self) -> &'static str {
        match self {
            ProblemKind::ModifiedRecord => "Innholdet i posten gir ikke kjedehashen som er lagret for den: et felt er endret, eller raden er byttet ut eller flyttet.",
            ProblemKind::MissingRecord => "Et sekvensnummer mangler: en eller flere rader er slettet.",
            ProblemKind::DuplicateRecord => "Et sekvensnummer finnes flere ganger: en rad er satt inn.",
            ProblemKind::UnexpectedRecord => "En rad har et sekvensnummer utenfor sin epoke: en rad er satt inn.",
            ProblemKind::RowOrder => "Radene står ikke i segmentets faste rekkefølge: filen er skrevet om.",
            ProblemKind::WrongPartition => "Raden hører til en annen virksomhet eller dato enn katalogen den ligger i.",
            ProblemKind::MissingSegment => "En fil som manifestet lister opp, finnes ikke: den er slettet eller omdøpt.",
            ProblemKind::UnexpectedSegment => "En datafil som intet manifest lister opp: satt inn eller flyttet.",
            ProblemKind::RenamedSegment => "Filens egne metadata oppgir et annet navn: filer er omdøpt eller byttet om.",
            ProblemKind::ModifiedFile => "Filens bytes stemmer ikke med hashen i manifestet.",
            ProblemKind::MissingManifest => "Et manifest mangler i rekken av epoker.",
            ProblemKind::ManifestMismatch => "Manifestet er ikke det sjekkpunktet signerte.",
            ProblemKind::ChainBreak => "Kjeden henger ikke sammen over en epokegrense, eller hoder og rader er skrevet om sammen.",
            ProblemKind::CheckpointMismatch => "Et klarert sjekkpunkt stemmer ikke med lageret.",
            ProblemKind::UnsignedEpoch => "Ingen klarert nøkkel har signert denne epoken.",
            ProblemKind::UntrustedSignature => "Sjekkpunktet er bare signert med nøkler som ikke står i listen over klarerte nøkler.",
            ProblemKind::ForgedCheckpoint => "Signaturen på sjekkpunktet er ikke gyldig: det er forfalsket eller endret.",
            ProblemKind::Truncated => "Poster som et signert sjekkpunkt dekker, er borte fra slutten av loggen.",
            ProblemKind::RolledBack => "Lageret er en eldre tilstand enn sjekkpunktet du har tatt vare på.",
            ProblemKind::Forked => "Historikken i lageret er en annen enn sjekkpunktet du har: rullet tilbake og skrevet om.",
            ProblemKind::Unreadable => "En fil kan ikke leses.",
            ProblemKind::ModifiedContext => "Konteksten (folkeregister, ansatte, pleieforhold) som en gjennomgang brukte, er endret eller fjernet etterpå.",
            ProblemKind::ModifiedIndex => "Epokeindeksen, som søk og pasientens innsyn leser, stemmer ikke med manifestene: de ville ikke vise det lageret inneholder.",
        }
    }
}

fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A report rendered in bokmål.
pub struct Bokmal<'a>(pub &'a Report);

impl fmt::Display for Bokmal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let (records, segments, epochs) = (counted(r.records, "post", "poster"), counted(r.segments, "segment", "segmenter"), counted(r.epochs, "epoke", "epoker"));
        if r.is_intact() {
            writeln!(f, "INTAKT: {records} i {segments} over {epochs}; hver post er hashet inn i den signerte kjeden.")?;
        } else {
            writeln!(f, "IKKE INTAKT: {} i {records}, {segments}, {epochs}.", counted(r.problems.len() as u64, "problem", "problemer"))?;
        }
        let signers = if r.signers.is_empty() { "ingen klarert nøkkel".to_owned() } else { r.signers.iter().cloned().collect::<Vec<_>>().join(", ") };
        writeln!(f, "  verifiserte sjekkpunkter: {} (signert av {signers})", r.checkpoints_checked)?;
        if let Some((size, time, signer)) = &r.latest_checkpoint {
            writeln!(f, "  nyeste sjekkpunkt: {size} poster, {time}, av {signer}")?;
        }
        writeln!(f, "  kjedehode etter sekvens {}: {}", r.last_sealed_seq, r.head)?;
        if r.held_checkpoint_ok {
            writeln!(f, "  sjekkpunktet du har tatt vare på, stemmer med lageret")?;
        }
        if r.unverified_rows > 0 {
            writeln!(f, "  {} rader etter et brudd i sin epoke kunne ikke kontrolleres enkeltvis", r.unverified_rows)?;
        }
        if r.unsealed_records > 0 {
            writeln!(f, "  {} bekreftede poster ligger ennå bare i skriveloggen (WAL) og er ikke dekket av en signatur", r.unsealed_records)?;
        }
        if r.checked_before > 0 {
            writeln!(f, "  inkrementell kontroll: post 1–{} ble kontrollert da sjekkpunktet ditt ble tatt, og er knyttet til det gjennom manifestenes kjede av hoder; de ble ikke lest på nytt", r.checked_before)?;
        }
        if r.in_flight.segments > 0 {
            writeln!(
                f,
                "  {} segmentfil(er) for epoke {} har ennå ikke manifest: en forsegling pågår, eller et krasj avbrøt den; ingen signatur dekker dem, og ingenting i dem regnes som kontrollert",
                r.in_flight.segments, r.in_flight.segments_epoch
            )?;
        }
        if let Some(epoch) = r.in_flight.unsigned_epoch {
            writeln!(f, "  epoke {epoch} har manifest, men ennå ikke sjekkpunkt, og postene ligger fortsatt i skriveloggen: forseglingen pågår eller ble avbrutt av et krasj; ingen signatur dekker den ennå")?;
        }
        for p in &r.problems {
            write!(f, "  ")?;
            p.write_heading(f, p.kind.label_nb(), "rad", "sekvens")?;
            writeln!(f, ": {} ({})", p.kind.meaning_nb(), p.detail)?;
        }
        Ok(())
    }
}
