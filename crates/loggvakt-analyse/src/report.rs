//! Writes each organisation's queue into its own directory — `queue.json`, `queue.csv`,
//! `report.html` (self-contained, bokmål with English alongside, charts as inline SVG),
//! `notices.json` (cases elsewhere that involved this organisation's patients) and
//! `unexplained.csv` — so that no file mixes two organisations' data.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::Analysis;
use crate::queue::{Case, CaseAccess, Notice, Queue};
use crate::AnalyseError;

/// Where one organisation's outputs went.
#[derive(Debug, Clone)]
pub struct Written {
    pub orgnr: String,
    pub dir: PathBuf,
    pub cases: usize,
    pub notices: usize,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AnalyseError> {
    std::fs::write(path, bytes).map_err(|e| AnalyseError::io(path, e))
}

fn csv(queue: &Queue) -> String {
    let mut out = crate::csv::row(&[
        "rank",
        "case_id",
        "score",
        "accessor_hpr",
        "accessor_name",
        "event_id",
        "source_system",
        "occurred_at",
        "patient_id",
        "action",
        "basis",
        "explained",
        "detectors",
        "reason_nb",
        "reason_en",
        "checkpoint_size",
        "context_snapshot",
    ]);
    let (checkpoint, snapshot) = basis_cells(queue.basis.as_ref());
    for case in &queue.cases {
        for a in &case.accesses {
            let fields = [
                case.rank.to_string(),
                case.case_id.clone(),
                format!("{:.2}", case.score),
                case.accessor.hpr.clone().unwrap_or_default(),
                case.accessor.name.clone().unwrap_or_default(),
                a.event_id.clone(),
                a.source_system.clone(),
                a.occurred_at.clone(),
                a.patient_id.clone().unwrap_or_default(),
                a.action.clone(),
                a.basis.clone(),
                a.explained.to_string(),
                a.detectors.join(" "),
                a.reasons_nb.join(" "),
                a.reasons_en.join(" "),
                checkpoint.clone(),
                snapshot.clone(),
            ];
            out.push_str(&crate::csv::row(&fields));
        }
    }
    out
}

/// Every CSV row names what the review read (the last two columns), so a file that
/// travels alone still says which checkpoint and context snapshot it rests on.
const FLAGS_HEADER: &str = "detector,event_id,seq,strength,explained,checkpoint_size,context_snapshot\r\n";

fn basis_cells(basis: Option<&crate::ReviewBasis>) -> (String, String) {
    basis.map_or((String::new(), String::new()), |b| (b.checkpoint_size.to_string(), b.context_snapshot.clone()))
}

/// Writes every queue and the notices addressed to each organisation under `out`.
pub fn write_outputs(out: &Path, analysis: &Analysis, queues: &[Queue], notices: &[Notice]) -> Result<Vec<Written>, AnalyseError> {
    // Every flag, queued or not, for statistics and evaluation: one pass, split by tenant.
    let mut flags_csv: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let (checkpoint, snapshot) = basis_cells(queues.iter().find_map(|q| q.basis.as_ref()));
    for f in &analysis.flags {
        if let Some(a) = analysis.accesses.get(&f.seq) {
            let csv = flags_csv.entry(a.tenant.as_str()).or_insert_with(|| FLAGS_HEADER.to_owned());
            csv.push_str(&crate::csv::row(&[
                analysis.detectors[f.detector].id.as_str(),
                &a.event_id,
                &a.seq.to_string(),
                &format!("{:.3}", f.strength),
                &a.explained.to_string(),
                &checkpoint,
                &snapshot,
            ]));
        }
    }
    let mut written = Vec::new();
    for q in queues {
        let dir = out.join(&q.orgnr);
        std::fs::create_dir_all(&dir).map_err(|e| AnalyseError::io(&dir, e))?;
        let json = serde_json::to_vec_pretty(q).map_err(|e| AnalyseError::Query { context: "queue.json".into(), reason: e.to_string() })?;
        write(&dir.join("queue.json"), &json)?;
        write(&dir.join("queue.csv"), csv(q).as_bytes())?;
        let mine: Vec<&Notice> = notices.iter().filter(|n| n.to_orgnr == q.orgnr).collect();
        let json = serde_json::to_vec_pretty(&mine).map_err(|e| AnalyseError::Query { context: "notices.json".into(), reason: e.to_string() })?;
        write(&dir.join("notices.json"), &json)?;
        let mut ids = crate::csv::row(&["event_id"]);
        for id in analysis.unexplained.get(&q.orgnr).into_iter().flatten() {
            ids.push_str(&crate::csv::row(&[id]));
        }
        write(&dir.join("unexplained.csv"), ids.as_bytes())?;
        write(&dir.join("flags.csv"), flags_csv.get(q.orgnr.as_str()).map_or(FLAGS_HEADER, String::as_str).as_bytes())?;
        write(&dir.join("report.html"), html(q, &mine).as_bytes())?;
        written.push(Written { orgnr: q.orgnr.clone(), dir, cases: q.cases.len(), notices: mine.len() });
    }
    Ok(written)
}

fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// Bars of accesses per day, the explained part darker; labelled for screen readers.
fn daily_chart(q: &Queue) -> String {
    let max = q.daily.iter().map(|d| d.accesses).max().unwrap_or(0).max(1);
    let (w, h, bar) = (60 + 70 * q.daily.len(), 200, 44);
    let mut svg = format!(
        r#"<svg role="img" aria-labelledby="daily-title" width="{w}" height="{}" viewBox="0 0 {w} {}"><title id="daily-title">Tilganger per dag, forklart andel mørkest / Accesses per day, explained share darkest</title>"#,
        h + 40,
        h + 40
    );
    for (i, d) in q.daily.iter().enumerate() {
        let x = 50 + i * 70;
        let total = (d.accesses as f64 / max as f64 * h as f64) as usize;
        let explained = (d.explained as f64 / max as f64 * h as f64) as usize;
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{}" width="{bar}" height="{total}" fill="#f4b183"><title>{}: {} tilganger, {} forklart</title></rect><rect x="{x}" y="{}" width="{bar}" height="{explained}" fill="#2e75b6"/><text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            h - total + 10,
            d.date,
            d.accesses,
            d.explained,
            h - explained + 10,
            x + bar / 2,
            h + 25,
            esc(&d.date[5..]),
            x + bar / 2,
            h - total + 5,
            d.accesses
        );
    }
    svg.push_str("</svg>");
    svg
}

fn detector_chart(q: &Queue) -> String {
    let rows: Vec<_> = q.detectors.iter().filter(|d| d.flagged_accesses > 0).collect();
    let max = rows.iter().map(|d| d.flagged_accesses).max().unwrap_or(1).max(1);
    let h = 24 * rows.len() + 10;
    let mut svg = format!(
        r#"<svg role="img" aria-labelledby="det-title" width="720" height="{h}" viewBox="0 0 720 {h}"><title id="det-title">Flagg per kontroll / Flags per detector</title>"#
    );
    for (i, d) in rows.iter().enumerate() {
        let y = 5 + i * 24;
        let w = (d.flagged_accesses as f64 / max as f64 * 420.0).max(1.0) as usize;
        let wq = (d.in_queued_cases as f64 / max as f64 * 420.0) as usize;
        let _ = write!(
            svg,
            r##"<text x="0" y="{}" font-size="12">{}</text><rect x="230" y="{y}" width="{w}" height="18" fill="#bdd7ee"/><rect x="230" y="{y}" width="{wq}" height="18" fill="#c00000"/><text x="{}" y="{}" font-size="11">{} ({} i køen)</text>"##,
            y + 13,
            esc(&d.title_nb),
            235 + w,
            y + 13,
            d.flagged_accesses,
            d.in_queued_cases
        );
    }
    svg.push_str("</svg>");
    svg
}

/// What explained an access, in plain words (bokmål, English).
fn explained_by_words(by: Option<&str>) -> (&'static str, &'static str) {
    match by {
        Some("participant") => ("deltok selv i behandlingen", "took part in the care"),
        Some("unit") => ("pasienten er i behandling i enheten", "the patient is in the unit's care"),
        Some("team") => ("en kollega fra enheten deltok i behandlingen", "a colleague from the unit took part in the care"),
        Some("duty") => ("var på vakt for pasientens enhet etter vaktplanen", "was on duty for the patient's unit by the roster"),
        Some("arrival") => ("akutt ankomst: oppholdet ble registrert like etter", "emergency arrival: the stay was registered shortly after"),
        Some("service") => {
            ("enheten arbeider rutinemessig med pasienter i behandling andre steder i virksomheten", "the unit routinely works on patients in care elsewhere in the organisation")
        }
        _ => ("annet", "other"),
    }
}

/// What the evidence behind an explanation is, in plain words (bokmål, English).
fn evidence_words(kind: Option<&str>) -> (&'static str, &'static str) {
    match kind {
        Some("encounter") => ("kontakt/innleggelse", "encounter or stay"),
        Some("episode_of_care") => ("forløp/vedtak", "episode of care or service decision"),
        Some("appointment") => ("time", "appointment"),
        Some("service_request") => ("rekvisisjon", "service request"),
        Some("medication_request") => ("legemiddelordinasjon", "medication order"),
        Some("medication_dispense") => ("utlevering av legemiddel", "medication dispense"),
        Some("diagnostic_report") => ("svarrapport", "diagnostic report"),
        Some("imaging_study") => ("bildeundersøkelse", "imaging study"),
        Some("care_team") => ("behandlingsteam", "care team"),
        _ => ("annet", "other"),
    }
}

fn access_rows(out: &mut String, accesses: &[CaseAccess], reasons: bool) {
    out.push_str("<table><thead><tr><th scope=col>Tidspunkt (UTC)</th><th scope=col>Pasient</th><th scope=col>Handling</th><th scope=col>Grunnlag</th><th scope=col>Forklart av pleie</th><th scope=col>Hendelses-id</th>");
    if reasons {
        out.push_str("<th scope=col>Hvorfor flagget / <span lang=en>Why flagged</span></th>");
    }
    out.push_str("</tr></thead><tbody>");
    for a in accesses {
        let explained = if a.explained {
            let (nb, en) = explained_by_words(a.explained_by.as_deref());
            format!("ja: {nb} <span lang=en class=en>(yes: {en})</span>")
        } else {
            "nei".into()
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{explained}</td><td><code>{}</code></td>",
            esc(&a.occurred_at),
            esc(a.patient_id.as_deref().unwrap_or("–")),
            esc(&a.action),
            esc(&a.basis),
            a.purpose_code.as_deref().map(|p| format!(" ({})", esc(p))).unwrap_or_default(),
            esc(&a.event_id)
        );
        if reasons {
            out.push_str("<td><ul>");
            for (nb, en) in a.reasons_nb.iter().zip(&a.reasons_en) {
                let _ = write!(out, "<li>{}<br><span lang=en class=en>{}</span></li>", esc(nb), esc(en));
            }
            out.push_str("</ul></td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

fn case_html(out: &mut String, c: &Case) {
    let who = c.accessor.name.as_deref().unwrap_or("(ukjent navn)");
    let _ = write!(
        out,
        "<section class=case><h3>#{} · {} · <span class=score>poeng {:.1}</span></h3><p><strong>{}</strong> (HPR {}, {}, {}) — {} tilgang(er) til {} pasient(er). <span lang=en class=en>{} access(es) to {} patient(s).</span></p><ul class=detectors>",
        c.rank,
        esc(&c.case_id),
        c.score,
        esc(who),
        esc(c.accessor.hpr.as_deref().unwrap_or("–")),
        esc(c.accessor.role_code.as_deref().unwrap_or("–")),
        esc(c.accessor.unit_name.as_deref().unwrap_or("–")),
        c.accesses.len(),
        c.patients,
        c.accesses.len(),
        c.patients
    );
    for d in &c.detectors {
        let _ = write!(
            out,
            "<li><strong>{}</strong> <span lang=en class=en>({})</span>: {} tilgang(er), alvorlighet {}</li>",
            esc(&d.title_nb),
            esc(&d.title_en),
            d.accesses,
            d.severity
        );
    }
    out.push_str("</ul>");
    access_rows(out, &c.accesses, true);
    out.push_str("</section>");
}

/// The organisation's report as one self-contained HTML page.
pub fn html(q: &Queue, notices: &[&Notice]) -> String {
    let name = q.org_name.clone().unwrap_or_else(|| q.orgnr.clone());
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!doctype html><html lang=nb><head><meta charset=utf-8><meta name=viewport content="width=device-width, initial-scale=1"><title>Loggkontroll {name} {from}–{to}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.45}}h1{{font-size:1.6em}}table{{border-collapse:collapse;width:100%;margin:.5em 0 1em;font-size:.9em}}th,td{{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}}th{{background:#e7eef7}}.en{{color:#404040;font-size:.92em}}.case{{border:2px solid #2e75b6;border-radius:6px;padding:.2em 1em;margin:1.2em 0}}.score{{color:#8b0000}}code{{font-size:.85em}}.figures td:nth-child(n+2){{text-align:right}}</style></head><body>
<header><h1>Loggkontroll: {name}</h1><p>Organisasjonsnummer {orgnr} · periode {from} til {to} · <span lang=en class=en>Access log review, period {from} to {to}</span></p></header><main>"#,
        name = esc(&name),
        orgnr = esc(&q.orgnr),
        from = esc(&q.from),
        to = esc(&q.to)
    );
    let _ = write!(
        out,
        "<h2>Sammendrag <span lang=en class=en>/ Summary</span></h2><table class=figures><tbody>\
<tr><th scope=row>Tilganger til pasientjournaler <span lang=en class=en>/ accesses to patient records</span></th><td>{}</td></tr>\
<tr><th scope=row>Forklart av pleieforhold <span lang=en class=en>/ explained by care</span></th><td>{} ({})</td></tr>\
<tr><th scope=row>Saker i køen <span lang=en class=en>/ cases queued</span></th><td>{} (kapasitet {})</td></tr>\
<tr><th scope=row>Saker over kapasiteten <span lang=en class=en>/ over capacity</span></th><td>{}</td></tr>\
<tr><th scope=row>Svake saker under terskel <span lang=en class=en>/ below threshold</span></th><td>{}</td></tr>\
<tr><th scope=row>Tilganger til pasienter uten norsk identitetsnummer <span lang=en class=en>/ accesses to patients without a Norwegian identity number</span></th><td>{}</td></tr>\
</tbody></table><p>Alle tilganger til pasienter med fødselsnummer, D-nummer eller H-nummer i perioden er kontrollert; saker er rangert etter alvorlighet, styrke og gjentakelse. \
<span lang=en class=en>Every access in the period to a patient with a Norwegian identity number was checked; cases are ranked by severity, evidence strength and repetition.</span></p>{}",
        q.accesses,
        q.explained,
        percent(q.explained, q.accesses),
        q.cases.len(),
        q.settings.capacity,
        q.cases_over_capacity,
        q.cases_below_threshold,
        q.unidentified_patient_accesses,
        if q.unidentified_patient_accesses > 0 {
            "<p>Tilganger til pasienter som bare er kjent ved et annet nummer (et sykehus' eget pasientnummer, en utenlandsk id) er lagret, \
men kan ikke kontrolleres mot folkeregisteret og pleieforholdene, så ingen regel har vurdert dem: se dem gjennom i kildesystemet. \
<span lang=en class=en>Accesses to patients known only by another number (a hospital's own patient number, a foreign id) are stored, \
but cannot be checked against the population register and care relations, so no rule judged them: review them in the source system.</span></p>"
        } else {
            ""
        }
    );
    if let Some(b) = &q.basis {
        // What the review read, so it can be checked and rerun (also in the signed journal).
        let _ = write!(
            out,
            "<p>Grunnlag: loggen slik sjekkpunktet for {} poster signerte den (hode <code>{}</code>), og kontekst {} (<code>{}</code>). \
<span lang=en class=en>Basis: the log as the checkpoint of {} records signed it (head <code>{}</code>), and context {} (<code>{}</code>).</span></p>",
            b.checkpoint_size,
            esc(&b.checkpoint_head[..b.checkpoint_head.len().min(16)]),
            esc(&b.context_snapshot),
            esc(&b.context_files_blake3[..b.context_files_blake3.len().min(16)]),
            b.checkpoint_size,
            esc(&b.checkpoint_head[..b.checkpoint_head.len().min(16)]),
            esc(&b.context_snapshot),
            esc(&b.context_files_blake3[..b.context_files_blake3.len().min(16)]),
        );
    }
    out.push_str("<h2>Tilganger per dag <span lang=en class=en>/ Accesses per day</span></h2>");
    out.push_str(&daily_chart(q));
    out.push_str("<h2>Saker <span lang=en class=en>/ Cases</span></h2>");
    if q.cases.is_empty() {
        out.push_str("<p>Ingen saker over terskelen denne perioden. <span lang=en class=en>No case above the threshold this period.</span></p>");
    }
    for c in &q.cases {
        case_html(&mut out, c);
    }
    out.push_str("<h2>Kontroller <span lang=en class=en>/ Detectors</span></h2>");
    out.push_str(&detector_chart(q));
    out.push_str("<table class=figures><thead><tr><th scope=col>Kontroll</th><th scope=col>Flaggede tilganger</th><th scope=col>…av dem forklart</th><th scope=col>I køen</th></tr></thead><tbody>");
    for d in &q.detectors {
        let _ = write!(
            out,
            "<tr><td>{} <span lang=en class=en>({})</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.title_nb),
            esc(&d.title_en),
            d.flagged_accesses,
            d.flagged_explained,
            d.in_queued_cases
        );
    }
    out.push_str("</tbody></table><h2>Forklart andel per enhet <span lang=en class=en>/ Explained share per unit</span></h2><table class=figures><thead><tr><th scope=col>Enhet</th><th scope=col>Tilganger</th><th scope=col>Forklart</th><th scope=col>Andel</th></tr></thead><tbody>");
    for c in &q.coverage {
        let _ = write!(
            out,
            "<tr><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(c.unit_name.as_deref().unwrap_or("–")),
            esc(c.unit_id.as_deref().unwrap_or("–")),
            c.accesses,
            c.explained,
            percent(c.explained, c.accesses)
        );
    }
    out.push_str("</tbody></table><h2>Hva forklarer tilgangene <span lang=en class=en>/ What explains the accesses</span></h2><table class=figures><thead><tr><th scope=col>Forklaring</th><th scope=col>Grunnlag</th><th scope=col>Tilganger</th><th scope=col>Andel av alle</th></tr></thead><tbody>");
    for x in &q.explanations {
        let (by_nb, by_en) = explained_by_words(Some(&x.by));
        let (kind_nb, kind_en) = evidence_words(x.kind.as_deref());
        let _ = write!(
            out,
            "<tr><td>{by_nb} <span lang=en class=en>({by_en})</span></td><td>{kind_nb} <span lang=en class=en>({kind_en})</span></td><td>{}</td><td>{}</td></tr>",
            x.accesses,
            percent(x.accesses, q.accesses)
        );
    }
    out.push_str("</tbody></table><h2>Stikkprøve av ikke-flaggede tilganger <span lang=en class=en>/ Quality-control sample of unflagged accesses</span></h2><p>Kontroller noen tilfeldige tilganger for hånd, for å se hva reglene ikke fanger. <span lang=en class=en>Review a few random accesses by hand, to see what the rules miss.</span></p>");
    access_rows(&mut out, &q.quality_sample, false);
    if !notices.is_empty() {
        out.push_str("<h2>Varsler fra andre virksomheter <span lang=en class=en>/ Notices from other organisations</span></h2><p>Deres pasienter inngår i saker hos disse virksomhetene. <span lang=en class=en>Your patients appear in these organisations' cases.</span></p><table><thead><tr><th scope=col>Fra</th><th scope=col>Sak</th><th scope=col>Pasient</th><th scope=col>Kontroller</th></tr></thead><tbody>");
        for n in notices {
            let _ = write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&n.from_orgnr), esc(&n.case_id), esc(&n.patient_id), esc(&n.detectors.join(", ")));
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<footer><p>Laget av loggvakt. Denne gjennomgangen er selv loggført i journalen. <span lang=en class=en>Made by loggvakt; this review is itself logged in the journal.</span></p></footer></main></body></html>\n");
    out
}
