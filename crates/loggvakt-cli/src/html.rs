//! A verification report as one self-contained HTML page (no scripts, no external files),
//! for a supervisory authority's case file: print it, sign it, attach it.

use loggvakt_verify::Report;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Words {
    lang: &'static str,
    title: &'static str,
    intact: &'static str,
    not_intact: &'static str,
    records: &'static str,
    segments: &'static str,
    epochs: &'static str,
    checkpoints: &'static str,
    signers: &'static str,
    head: &'static str,
    store: &'static str,
    verified_at: &'static str,
    problems: &'static str,
    kind: &'static str,
    place: &'static str,
    detail: &'static str,
    notes: &'static str,
    none: &'static str,
    how: &'static str,
    row: &'static str,
    seq: &'static str,
    problem: &'static str,
    problems_count: &'static str,
}

const EN: Words = Words {
    lang: "en",
    title: "Verification of an access-log store",
    intact: "INTACT: every record hashes into the chain signed by trusted keys",
    not_intact: "NOT INTACT",
    records: "Records",
    segments: "Segments",
    epochs: "Epochs",
    checkpoints: "Checkpoints verified",
    signers: "Signed by",
    head: "Chain head",
    store: "Store",
    verified_at: "Verified at",
    problems: "Problems",
    kind: "Kind",
    place: "File, row, sequence",
    detail: "What is wrong",
    notes: "Notes",
    none: "none",
    how: "Checked offline with loggvakt verify from the files, the published format (docs/format.md) and the trusted public keys alone.",
    row: "row",
    seq: "seq",
    problem: "problem",
    problems_count: "problems",
};

const NB: Words = Words {
    lang: "nb",
    title: "Verifisering av et lager for tilgangslogg",
    intact: "INTAKT: hver post er hashet inn i kjeden som klarerte nøkler har signert",
    not_intact: "IKKE INTAKT",
    records: "Poster",
    segments: "Segmenter",
    epochs: "Epoker",
    checkpoints: "Verifiserte sjekkpunkter",
    signers: "Signert av",
    head: "Kjedehode",
    store: "Lager",
    verified_at: "Verifisert",
    problems: "Problemer",
    kind: "Type",
    place: "Fil, rad, sekvens",
    detail: "Hva som er galt",
    notes: "Merknader",
    none: "ingen",
    how: "Kontrollert uten nett med loggvakt verify, bare fra filene, det publiserte formatet (docs/format.md) og de klarerte offentlige nøklene.",
    row: "rad",
    seq: "sekvens",
    problem: "problem",
    problems_count: "problemer",
};

pub fn render(report: &Report, store: &str, bokmal: bool) -> String {
    let w = if bokmal { &NB } else { &EN };
    let n = report.problems.len();
    let (status_class, status) =
        if report.is_intact() { ("ok", w.intact.to_owned()) } else { ("bad", format!("{}: {n} {}", w.not_intact, if n == 1 { w.problem } else { w.problems_count })) };
    let signers = if report.signers.is_empty() { w.none.to_owned() } else { report.signers.iter().cloned().collect::<Vec<_>>().join(", ") };
    let row = |k: &str, v: &str| format!("<tr><th>{}</th><td>{}</td></tr>\n", escape(k), escape(v));
    let mut html = format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}}\
.status{{padding:1rem;border-radius:.4rem;font-weight:bold;font-size:1.2rem}}.ok{{background:#dff3e4;border:2px solid #1d7a3a}}\
.bad{{background:#fbe3e3;border:2px solid #a11d1d}}table{{border-collapse:collapse;width:100%;margin:1rem 0}}\
th,td{{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #ccc}}code,td.mono{{font-family:ui-monospace,monospace;word-break:break-all}}\
</style></head><body>\n<h1>{title}</h1>\n<p class=\"status {status_class}\" role=\"status\">{status}</p>\n<table>\n",
        lang = w.lang,
        title = escape(w.title),
        status = escape(&status),
    );
    html += &row(w.store, store);
    html += &row(w.verified_at, &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    html += &row(w.records, &report.records.to_string());
    html += &row(w.segments, &report.segments.to_string());
    html += &row(w.epochs, &report.epochs.to_string());
    html += &row(w.checkpoints, &report.checkpoints_checked.to_string());
    html += &row(w.signers, &signers);
    html += &row(&format!("{} (seq {})", w.head, report.last_sealed_seq), &report.head);
    html += "</table>\n";
    html += &format!("<h2>{}</h2>\n", escape(w.problems));
    if report.problems.is_empty() {
        html += &format!("<p>{}</p>\n", escape(w.none));
    } else {
        html += &format!("<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>\n", escape(w.kind), escape(w.place), escape(w.detail));
        for p in &report.problems {
            let place = [p.file.clone(), p.row.map(|r| format!("{} {r}", w.row)), p.seq.map(|s| format!("{} {s}", w.seq))].into_iter().flatten().collect::<Vec<_>>().join(", ");
            let (label, detail) = if bokmal { (p.kind.label_nb(), format!("{} ({})", p.kind.meaning_nb(), p.detail)) } else { (p.kind.label(), p.detail.clone()) };
            html += &format!("<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td></tr>\n", escape(label), escape(&place), escape(&detail));
        }
        html += "</tbody></table>\n";
    }
    if !report.notes.is_empty() {
        html += &format!("<h2>{}</h2>\n<ul>\n", escape(w.notes));
        for note in &report.notes {
            html += &format!("<li>{}</li>\n", escape(note));
        }
        html += "</ul>\n";
    }
    html += &format!("<p><small>{} loggvakt {}</small></p>\n</body></html>\n", escape(w.how), env!("CARGO_PKG_VERSION"));
    html
}
