//! One test per kind of tampering: each on a real store made by `ingest`, each asserting
//! that `verify` fails and names the file, row and sequence number where it can.

use crate::support::*;

#[test]
fn an_untouched_store_verifies_intact() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let out = ws.verify(&store, None);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("INTACT: 600 records"), "{report}");
    assert!(manifests(&store).len() >= 3, "the fixture spans several epochs");
}

#[test]
fn a_modified_field_is_located_by_file_row_and_seq() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    let mut seq = 0;
    rewrite_segment(&path, |rows| {
        seq = rows[1].seq;
        std::sync::Arc::make_mut(&mut rows[1].event).user_name = Some("Someone Else".into());
    });
    assert_reports(&ws.verify(&store, None), &["[modified record]", &rel, "row 1", &format!("seq {seq}")]);
}

#[test]
fn a_deleted_row_is_reported_as_a_missing_seq() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    let mut seq = 0;
    rewrite_segment(&path, |rows| {
        seq = rows.remove(1).seq;
    });
    assert_reports(&ws.verify(&store, None), &["[missing record]", &format!("seq {seq}")]);
    assert_reports(&ws.verify(&store, None), &["[modified file]", &rel]);
}

#[test]
fn an_inserted_copy_of_a_row_is_reported_as_a_duplicate() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    let mut seq = 0;
    rewrite_segment(&path, |rows| {
        let mut forged = rows[0].clone();
        let event = std::sync::Arc::make_mut(&mut forged.event);
        event.action = "read".into();
        event.user_name = Some("Inserted".into());
        seq = forged.seq;
        rows.insert(1, forged);
    });
    assert_reports(&ws.verify(&store, None), &["[duplicated record]", &rel, "row 1", &format!("seq {seq}")]);
}

#[test]
fn an_inserted_row_with_a_new_seq_is_reported() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    rewrite_segment(&path, |rows| {
        let mut forged = rows[0].clone();
        forged.seq = 1_000_000;
        rows.push(forged);
    });
    assert_reports(&ws.verify(&store, None), &["[inserted record]", &rel, "seq 1000000"]);
}

#[test]
fn reordered_rows_are_reported() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    rewrite_segment(&path, |rows| rows.swap(0, 2));
    assert_reports(&ws.verify(&store, None), &["[rows reordered]", &rel]);
}

#[test]
fn records_moved_between_seqs_are_reported() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    rewrite_segment(&path, |rows| {
        // Swap the content of two records but keep the seq and tag columns in place.
        let first = rows[0].event.clone();
        rows[0].event = rows[1].event.clone();
        rows[1].event = first;
    });
    assert_reports(&ws.verify(&store, None), &["[modified record]", &rel]);
}

#[test]
fn a_deleted_segment_is_reported_with_its_seq_range() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    std::fs::remove_file(&path).expect("delete");
    assert_reports(&ws.verify(&store, None), &["[missing segment]", &rel, "gone"]);
}

#[test]
fn a_renamed_segment_is_reported_under_both_names() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    let renamed = path.with_file_name("seg-00000002-0099.parquet");
    std::fs::rename(&path, &renamed).expect("rename");
    let out = ws.verify(&store, None);
    assert_reports(&out, &["[missing segment]", &rel]);
    assert_reports(&out, &["[unexpected segment]", "seg-00000002-0099.parquet", "renamed or moved", &rel]);
}

#[test]
fn swapped_segments_are_reported_as_renamed() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let m = &manifests(&store)[1];
    let (a, b) = (store.join(&m.segments[0].path), store.join(&m.segments[1].path));
    let tmp = store.join("swap.tmp");
    std::fs::rename(&a, &tmp).expect("swap");
    std::fs::rename(&b, &a).expect("swap");
    std::fs::rename(&tmp, &b).expect("swap");
    assert_reports(&ws.verify(&store, None), &["[renamed segment]", &m.segments[0].path, &m.segments[1].path]);
}

/// Removes the newest epoch: its segments, manifest, checkpoint, epoch index line and
/// patient index entries (as a careful attacker would: a left-over index line or run alone
/// already gives the cut away).
fn cut_last_epoch(store: &std::path::Path) -> u64 {
    let index = store.join("index/epochs.ndjson");
    let lines = std::fs::read_to_string(&index).expect("index");
    let kept: Vec<&str> = lines.lines().collect();
    std::fs::write(&index, kept[..kept.len() - 1].join("\n") + "\n").expect("cut index");
    let all = manifests(store);
    let last = all.last().expect("an epoch");
    for s in &last.segments {
        std::fs::remove_file(store.join(&s.path)).expect("remove segment");
    }
    std::fs::remove_file(store.join(loggvakt_journal::manifest::manifest_rel_path(last.epoch))).expect("remove manifest");
    std::fs::remove_file(store.join(loggvakt_journal::manifest::checkpoint_rel_path(last.last_seq))).expect("remove checkpoint");
    // The patient index names the epoch's segments too: rebuilt without it.
    std::fs::remove_dir_all(store.join(loggvakt_journal::patients::PATIENT_INDEX_DIR)).expect("remove the patient index");
    loggvakt_journal::patients::repair(store, last.epoch - 1).expect("rebuild the patient index");
    last.first_seq
}

#[test]
fn a_truncated_tail_is_caught_with_a_checkpoint_the_verifier_holds() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let held = ws.path("regulator.note");
    ws.export_checkpoint(&store, &held);
    let first_cut = cut_last_epoch(&store);
    // Without outside knowledge the shorter store is self-consistent: this is exactly why
    // regulators keep a checkpoint.
    assert!(ws.verify(&store, None).status.success());
    let out = ws.verify(&store, Some(&held));
    let report = text(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains(&format!("seq {first_cut}")) && report.contains("covers 600 records"), "{report}");
}

#[test]
fn a_tail_cut_below_a_store_checkpoint_is_reported_as_truncated() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let last = manifests(&store).pop().expect("an epoch");
    for s in &last.segments {
        std::fs::remove_file(store.join(&s.path)).expect("remove segment");
    }
    std::fs::remove_file(store.join(loggvakt_journal::manifest::manifest_rel_path(last.epoch))).expect("remove manifest");
    assert_reports(&ws.verify(&store, None), &["[truncated]", "covers 600 records", &format!("seq {}", last.first_seq)]);
}

/// A store of 300 events copied aside, then grown to 600, with the regulator's checkpoint
/// of the grown store: returns (old copy, held checkpoint).
fn old_copy_and_newer_checkpoint(ws: &Workspace) -> (std::path::PathBuf, std::path::PathBuf) {
    let store = ws.path("store");
    let first = ws.samples("first", 1, 300);
    assert!(ws.ingest(&store, &first, &[]).status.success());
    let old_copy = ws.path("old-copy");
    copy_dir(&store, &old_copy);
    let second = ws.samples("second", 2, 300);
    assert!(ws.ingest(&store, &second[1..], &[]).status.success());
    let held = ws.path("regulator.note");
    ws.export_checkpoint(&store, &held);
    (old_copy, held)
}

#[test]
fn a_rollback_to_an_older_copy_is_caught_with_a_held_checkpoint() {
    let ws = Workspace::new();
    let (old_copy, held) = old_copy_and_newer_checkpoint(&ws);
    assert!(ws.verify(&old_copy, None).status.success(), "the old copy is internally consistent");
    assert_reports(&ws.verify(&old_copy, Some(&held)), &["[rolled back]", "covers 600 records", "ends at seq 300"]);
}

#[test]
fn a_rolled_back_and_rewritten_history_is_reported_as_forked() {
    let ws = Workspace::new();
    let (old_copy, held) = old_copy_and_newer_checkpoint(&ws);
    // The operator restores the old copy and writes other events in place of the real ones.
    let other = ws.samples("other", 3, 300);
    assert!(ws.ingest(&old_copy, &other[1..], &[]).status.success());
    assert_reports(&ws.verify(&old_copy, Some(&held)), &["[forked history]", "seq 600"]);
}

#[test]
fn checkpoints_signed_by_an_untrusted_key_do_not_count() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let other = Workspace::new();
    let out = ws.verify_with_keys(&store, &other.trusted, None);
    assert_reports(&out, &["[untrusted signature]", "checkpoints/", "test-operator+"]);
    assert_reports(&out, &["[unsigned epoch]", "epoch 1"]);
}

#[test]
fn a_forged_checkpoint_is_rejected() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let last = manifests(&store).pop().expect("epoch");
    let path = store.join(loggvakt_journal::manifest::checkpoint_rel_path(last.last_seq));
    let note = std::fs::read_to_string(&path).expect("note");
    std::fs::write(&path, note.replace(&format!("\n{}\n", last.last_seq), "\n5000\n")).expect("forge");
    let rel = loggvakt_journal::manifest::checkpoint_rel_path(last.last_seq);
    assert_reports(&ws.verify(&store, None), &["[forged checkpoint]", &rel, "does not verify"]);
}

#[test]
fn a_rewritten_manifest_is_caught_by_its_signed_hash() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    // A careful attacker rewrites the segment AND records its new hash in the manifest.
    rewrite_segment(&path, |rows| std::sync::Arc::make_mut(&mut rows[1].event).user_name = Some("Someone Else".into()));
    let manifest_path = store.join(loggvakt_journal::manifest::manifest_rel_path(2));
    let mut m = manifests(&store)[1].clone();
    let new_hash = loggvakt_journal::chain::to_hex(&blake3_of(&path));
    m.segments.iter_mut().filter(|s| s.path == rel).for_each(|s| s.blake3 = new_hash.clone());
    std::fs::write(&manifest_path, m.to_bytes()).expect("rewrite manifest");
    let out = ws.verify(&store, None);
    assert_reports(&out, &["[manifest mismatch]", "epoch 2"]);
    assert_reports(&out, &["[modified record]", &rel, "row 1"]);
}

/// Searches and patient views read the epoch index instead of every manifest: an index
/// that hides a segment (or a whole epoch) from them is reported, and a writer rebuilds a
/// missing index from the manifests when it opens the store.
#[test]
fn an_epoch_index_that_hides_segments_is_reported() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let index = store.join("index/epochs.ndjson");
    let original = std::fs::read_to_string(&index).expect("the writer keeps an epoch index");
    assert_eq!(original.lines().count(), manifests(&store).len(), "one line per epoch");
    let hidden: Vec<String> = original
        .lines()
        .map(|line| {
            let mut m: loggvakt_journal::manifest::Manifest = serde_json::from_str(line).expect("a manifest per line");
            if m.epoch == 2 {
                m.segments.pop();
            }
            serde_json::to_string(&m).expect("json")
        })
        .collect();
    std::fs::write(&index, hidden.join("\n") + "\n").expect("rewrite index");
    assert_reports(&ws.verify(&store, None), &["[modified index]", "epoch 2"]);
    let without_epoch_2: Vec<&str> = original.lines().filter(|l| !l.contains("\"epoch\":2,")).collect();
    std::fs::write(&index, without_epoch_2.join("\n") + "\n").expect("rewrite index");
    assert_reports(&ws.verify(&store, None), &["[modified index]", "epoch 2 is missing"]);

    std::fs::remove_file(&index).expect("remove index");
    let out = ws.verify(&store, None);
    assert!(out.status.success() && text(&out).contains("does not exist yet"), "{}", text(&out));
    let more = ws.samples("more", 12, 10);
    assert!(ws.ingest(&store, &more[1..], &[]).status.success());
    assert_eq!(std::fs::read_to_string(&index).expect("rebuilt").lines().count(), manifests(&store).len());
    verify_clean_store(&ws, &store);
}

fn verify_clean_store(ws: &Workspace, store: &std::path::Path) {
    let out = ws.verify(store, None);
    assert!(out.status.success(), "{}", text(&out));
}

fn blake3_of(path: &std::path::Path) -> [u8; 32] {
    *blake3::hash(&std::fs::read(path).expect("read segment")).as_bytes()
}

#[test]
fn a_rotated_key_continues_the_chain() {
    let ws = Workspace::new();
    let store = ws.path("store");
    let first = ws.samples("first", 1, 200);
    assert!(ws.ingest(&store, &first, &[]).status.success());
    let new_key = ws.path("keys/rotated.key");
    let out = run(loggvakt().args(["keygen", "--name", "test-operator-2027"]).arg("--out").arg(&new_key).arg("--trusted-keys").arg(&ws.trusted));
    assert!(out.status.success(), "{}", text(&out));
    let second = ws.samples("second", 2, 200);
    let out = run(loggvakt().arg("ingest").arg("--store").arg(&store).arg("--key").arg(&new_key).arg(&second[1]));
    assert!(out.status.success(), "{}", text(&out));
    let out = ws.verify(&store, None);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("test-operator+") && report.contains("test-operator-2027+"), "both key ids sign: {report}");
}

#[test]
fn the_report_reads_in_bokmal_for_a_norwegian_locale() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let verify_nb =
        |extra: &[&str], lang_env: &str| run(loggvakt().env("LANG", lang_env).arg("verify").arg("--store").arg(&store).arg("--trusted-keys").arg(&ws.trusted).args(extra));
    let intact = text(&verify_nb(&[], "nb_NO.UTF-8"));
    assert!(intact.starts_with("INTAKT: 600 poster"), "{intact}");
    let (rel, path) = victim_segment(&store);
    rewrite_segment(&path, |rows| std::sync::Arc::make_mut(&mut rows[1].event).user_name = Some("Someone Else".into()));
    let out = verify_nb(&["--lang", "nb"], "en_GB.UTF-8");
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(report.starts_with("IKKE INTAKT"), "{report}");
    assert!(report.lines().any(|l| l.contains("[endret post]") && l.contains(&rel) && l.contains("rad 1") && l.contains("et felt er endret")), "{report}");
}

#[test]
fn an_html_report_for_the_case_file_shows_status_and_each_problem() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let (rel, path) = victim_segment(&store);
    // A file name an attacker chose ends up in the report; it must not become markup.
    std::fs::rename(&path, path.with_file_name("seg-<b>x<i>.parquet")).expect("rename");
    let page = ws.path("report.html");
    let out = run(loggvakt().arg("verify").arg("--store").arg(&store).arg("--trusted-keys").arg(&ws.trusted).args(["--lang", "nb", "--html"]).arg(&page));
    assert_eq!(out.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(html.starts_with("<!doctype html>") && html.contains("lang=\"nb\""));
    assert!(html.contains("IKKE INTAKT: ") && html.contains("manglende segment") && html.contains(&rel));
    assert!(html.contains("seg-&lt;b&gt;x&lt;i&gt;.parquet") && !html.contains("<b>x"), "names from the store are escaped");
}

/// What a seal in progress or cut short by a crash leaves (segments of the next epoch, a
/// newest manifest whose records are still in the write-ahead journal) is reported as in
/// flight; the same shapes without those write-ahead files are tampering, and stay reported.
#[test]
fn in_flight_leniency_does_not_cover_a_deleted_last_checkpoint_or_a_planted_segment() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let last = manifests(&store).pop().expect("a manifest");
    std::fs::remove_file(store.join(loggvakt_journal::manifest::checkpoint_rel_path(last.last_seq))).expect("remove checkpoint");
    let (_, victim) = victim_segment(&store);
    // The next epoch's number, as a seal would write it; but no records await a seal.
    let planted = store.join(format!("data/tenant=983971636/date=2026-11-20/seg-{:08}-0000.parquet", last.epoch + 1));
    std::fs::create_dir_all(planted.parent().expect("dir")).expect("mkdir");
    std::fs::copy(&victim, &planted).expect("copy");
    let out = ws.verify(&store, None);
    assert_reports(&out, &["[unsigned epoch]", &format!("epoch {}", last.epoch)]);
    assert_reports(&out, &["[unexpected segment]", &format!("seg-{:08}-0000.parquet", last.epoch + 1)]);
}

/// A regulator who checks weekly reads only what is new since the checkpoint they kept:
/// what came after it is checked row by row, what it covers is not read again (and a full
/// run still catches a change there).
#[test]
fn an_incremental_check_reads_only_what_came_after_the_held_checkpoint() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let held = ws.path("last-week.note");
    ws.export_checkpoint(&store, &held);
    let new = ws.samples("this-week", 11, 300);
    assert!(ws.ingest(&store, &new[1..], &["--epoch-records", "200"]).status.success());
    let incremental = |store: &std::path::Path| {
        run(loggvakt().arg("verify").arg("--store").arg(store).arg("--trusted-keys").arg(&ws.trusted).arg("--checkpoint").arg(&held).arg("--incremental"))
    };
    let out = incremental(&store);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("incremental: records 1..=600"), "{}", text(&out));

    // A change in last week's data: not read by the weekly check, caught by a full one.
    let (_, old_victim) = victim_segment(&store);
    rewrite_segment(&old_victim, |rows| std::sync::Arc::make_mut(&mut rows[1].event).user_name = Some("Someone Else".into()));
    assert!(incremental(&store).status.success(), "last week's epochs are not read again");
    assert_reports(&ws.verify(&store, Some(&held)), &["[modified record]"]);
    // Not even their manifests and checkpoints: a year of seals is a million of each. The
    // first epoch's manifest made unreadable is a problem for a full run only.
    let first_manifest = store.join("manifests/epoch-00000001.json");
    let original = std::fs::read(&first_manifest).expect("epoch 1 manifest");
    std::fs::write(&first_manifest, b"not json").expect("damage");
    let out = incremental(&store);
    assert!(out.status.success(), "the epochs before the held checkpoint are not read: {}", text(&out));
    assert!(!ws.verify(&store, Some(&held)).status.success(), "a full run reads every manifest");
    std::fs::write(&first_manifest, original).expect("restore");

    // A change in this week's data is caught by the weekly check.
    let newest = manifests(&store).pop().expect("a new epoch");
    let segment = newest.segments.iter().find(|s| s.rows >= 2).expect("a segment with rows");
    rewrite_segment(&store.join(&segment.path), |rows| std::sync::Arc::make_mut(&mut rows[0].event).user_name = Some("Someone Else".into()));
    assert_reports(&incremental(&store), &["[modified record]", &segment.path]);
}
