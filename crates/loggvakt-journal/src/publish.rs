//! Publishing a store's sealed epochs to shared storage (an S3 bucket, another disk), where
//! readers on other machines verify, search and detect.
//!
//! The writer seals on its own disk first, as always: an acknowledgement waits for the
//! local write-ahead journal only, never for the network. Publishing then copies each
//! committed epoch in the order a reader needs (segments, then the manifest listing them,
//! then the checkpoint signing the manifest), and each object only if absent
//! ([`Storage::create`]). So a reader never finds a checkpoint whose files are missing,
//! and of two writers that publish to one place, the second is refused at the first epoch
//! they both hold, before it writes anything there: epoch N is sealed there once.
//!
//! Publishing again resumes after the last epoch the target holds whole; an object found
//! already there is accepted only if it is byte for byte this store's (a publish that a
//! crash cut short), never overwritten.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loggvakt_format::layout::{list_manifests, read_manifest, STORE_FILE};
use loggvakt_format::manifest::{checkpoint_rel_path, epoch_of_manifest_name, manifest_rel_path, Manifest};
use loggvakt_storage::{Bytes, Created, LocalDir, Storage, StorageError};

/// Why a publish stopped. Objects created before the error stay: they are whole and this
/// store's, and the next publish goes on from them.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Local(#[from] loggvakt_format::StoreError),
    #[error(transparent)]
    Target(#[from] StorageError),
    #[error("{location} holds another store's {what}, not this one's; nothing of this store's was written over it. Publish each store to a place of its own, or find out which writer wrote there")]
    Conflict { location: String, what: String },
}

/// What a publish did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Epochs the target now holds whole that it did not before.
    pub epochs: u64,
    /// Context snapshots newly published.
    pub snapshots: u64,
    /// Objects created, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// The newest epoch the target holds whole after this publish (0: none).
    pub through_epoch: u64,
}

/// Publishes every committed epoch of the store in `store` (and its context snapshots)
/// that `target` does not hold yet: [`Publisher::open`], then one
/// [`Publisher::publish_new`]. `progress` is told after each epoch: (epochs done, epochs
/// to do).
pub fn publish(store: &Path, target: &dyn Storage, progress: &dyn Fn(u64, u64)) -> Result<PublishReport, PublishError> {
    Publisher::open(store, target)?.publish_new(progress)
}

/// A store's publisher to one target, for a process that publishes again and again (the
/// daemon, after its seals): the target is checked once, and each later call starts where
/// the last one ended, without listing the target again.
pub struct Publisher<'a> {
    store: PathBuf,
    local: LocalDir,
    target: &'a dyn Storage,
    /// The newest epoch the target holds whole.
    through: u64,
    snapshots: BTreeSet<String>,
}

impl<'a> Publisher<'a> {
    /// Checks that the target keeps its create-if-absent promise and holds this store
    /// (or nothing yet), and finds the newest epoch it holds whole.
    pub fn open(store: &Path, target: &'a dyn Storage) -> Result<Self, PublishError> {
        target.check_conditional_writes()?;
        let local = LocalDir::new(store);
        let mut report = PublishReport::default();
        copy(&local, target, STORE_FILE, "store identity (store.json)", &mut report)?;

        let epochs_in = |names: Vec<String>| -> BTreeSet<u64> { names.iter().filter_map(|n| epoch_of_manifest_name(n.rsplit('/').next().unwrap_or(n))).collect() };
        let theirs = epochs_in(target.list("manifests")?);
        let ours: BTreeSet<u64> = list_manifests(store)?.into_iter().map(|(epoch, _)| epoch).collect();
        let held_checkpoints: BTreeSet<String> = target.list("checkpoints")?.into_iter().collect();
        // The target holds an epoch whole when its checkpoint is there. The newest such
        // epoch must be this store's, byte for byte: its manifest's chain head commits to
        // every record before it, so the epochs below it need no reading.
        let mut through = 0;
        let both: Vec<u64> = theirs.intersection(&ours).copied().collect();
        for epoch in both.iter().rev() {
            let name = manifest_rel_path(*epoch);
            let (bytes, path) = (local.read(&name)?, store.join(&name));
            let manifest = Manifest::parse(&bytes, &path)?;
            if !held_checkpoints.contains(&checkpoint_rel_path(manifest.last_seq)) {
                continue;
            }
            if target.read(&name)? != bytes {
                return Err(PublishError::Conflict { location: target.describe(&name), what: format!("epoch {epoch}") });
            }
            through = *epoch;
            break;
        }
        // Epochs there that this store does not have (or not whole there): the first one
        // must be this store's too.
        if let Some(first) = theirs.iter().find(|e| **e > through) {
            let name = manifest_rel_path(*first);
            if local.read_if_exists(&name)?.as_ref() != Some(&target.read(&name)?) {
                return Err(PublishError::Conflict { location: target.describe(&name), what: format!("epoch {first}") });
            }
        }
        Ok(Publisher { store: store.to_owned(), local, target, through, snapshots: BTreeSet::new() })
    }

    /// Publishes the committed epochs after the last one published, then any context
    /// snapshot not published yet.
    pub fn publish_new(&mut self, progress: &dyn Fn(u64, u64)) -> Result<PublishReport, PublishError> {
        let mut report = PublishReport { through_epoch: self.through, ..PublishReport::default() };
        // Manifests are read one at a time as their epoch is published: a first publish of
        // a year of 30-second seals has a million of them.
        let pending: Vec<(u64, PathBuf)> = list_manifests(&self.store)?.into_iter().filter(|(epoch, _)| *epoch > self.through).collect();
        let total = pending.len() as u64;
        for (done, (_, path)) in pending.into_iter().enumerate() {
            let (manifest, _) = read_manifest(&path)?;
            // Committed epochs only: those whose checkpoint is written (a manifest without
            // one is a seal at work, or one a crash cut short, which the writer redoes).
            if !self.store.join(checkpoint_rel_path(manifest.last_seq)).exists() {
                break;
            }
            let epoch = manifest.epoch;
            for segment in &manifest.segments {
                copy(&self.local, self.target, &segment.path, &format!("segment of epoch {epoch}"), &mut report)?;
            }
            copy(&self.local, self.target, &manifest_rel_path(epoch), &format!("epoch {epoch}"), &mut report)?;
            copy(&self.local, self.target, &checkpoint_rel_path(manifest.last_seq), &format!("checkpoint of epoch {epoch}"), &mut report)?;
            report.epochs += 1;
            report.through_epoch = epoch;
            self.through = epoch;
            progress(done as u64 + 1, total);
        }
        publish_snapshots(&self.local, self.target, &mut self.snapshots, &mut report)?;
        Ok(report)
    }
}

/// Context snapshots (`context/snapshots/vNNNNNN/`): each published file by file, its
/// `snapshot.json` last, so a reader that finds that file finds the whole snapshot. The
/// local `CURRENT` pointer is not published (it is replaced at each import, and objects
/// here are never replaced): a reader takes the newest snapshot that has its
/// `snapshot.json`.
fn publish_snapshots(local: &LocalDir, target: &dyn Storage, published: &mut BTreeSet<String>, report: &mut PublishReport) -> Result<(), PublishError> {
    let mut snapshots: BTreeSet<String> = BTreeSet::new();
    for name in local.list("context/snapshots")? {
        let mut parts = name.split('/').skip(2);
        if let Some(version) = parts.next().filter(|v| v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit())) {
            snapshots.insert(version.to_owned());
        }
    }
    let unpublished: Vec<String> = snapshots.difference(published).cloned().collect();
    for version in unpublished {
        let dir = format!("context/snapshots/{version}");
        let info = format!("{dir}/snapshot.json");
        // Only a finished import has its snapshot.json; one at work is left for later.
        if local.read_if_exists(&info)?.is_none() {
            continue;
        }
        if target.read_if_exists(&info)?.is_some() {
            published.insert(version);
            continue;
        }
        for name in local.list(&dir)?.into_iter().filter(|n| *n != info) {
            copy(local, target, &name, &format!("context snapshot {version}"), report)?;
        }
        copy(local, target, &info, &format!("context snapshot {version}"), report)?;
        published.insert(version);
        report.snapshots += 1;
    }
    Ok(())
}

/// Creates `name` in the target with the local bytes; one already there must be the same.
fn copy(local: &LocalDir, target: &dyn Storage, name: &str, what: &str, report: &mut PublishReport) -> Result<(), PublishError> {
    let bytes: Bytes = local.read(name)?;
    let size = bytes.len() as u64;
    match target.create(name, bytes.clone())? {
        Created::New => {
            report.objects += 1;
            report.bytes += size;
            Ok(())
        }
        Created::AlreadyThere if target.read(name)? == bytes => Ok(()),
        Created::AlreadyThere => Err(PublishError::Conflict { location: target.describe(name), what: what.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Journal, JournalOptions, SigningKey};

    /// Seals `epochs` epochs of three events each into the store in `dir`, the events
    /// numbered from `first` (so two stores' epochs differ in content).
    fn store_with_epochs(dir: &Path, first: u64, epochs: u64) {
        let key = SigningKey::from_seed("publish-test", [5; 32]);
        let (mut journal, _) = Journal::open(dir, key, JournalOptions::default()).expect("open");
        for epoch in 0..epochs {
            for n in 0..3 {
                let event = loggvakt_model::AccessEvent { event_id: format!("e-{}", first + epoch * 10 + n), ..crate::vectors::vector_event() };
                journal.append(event).expect("append");
            }
            journal.commit().expect("commit");
            journal.seal().expect("seal");
        }
        journal.close().expect("close");
    }

    #[test]
    fn a_publish_copies_committed_epochs_once_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, target_dir) = (dir.path().join("store"), dir.path().join("shared"));
        store_with_epochs(&store, 0, 2);
        let target = LocalDir::new(&target_dir);
        let first = publish(&store, &target, &|_, _| {}).expect("publish");
        assert_eq!((first.epochs, first.through_epoch), (2, 2));
        for name in ["store.json", "manifests/epoch-00000001.json", "manifests/epoch-00000002.json"] {
            assert_eq!(std::fs::read(target_dir.join(name)).expect(name), std::fs::read(store.join(name)).expect(name), "{name}");
        }
        let again = publish(&store, &target, &|_, _| {}).expect("publish again");
        assert_eq!((again.epochs, again.objects, again.through_epoch), (0, 0, 2), "nothing new: nothing written");

        store_with_epochs(&store, 100, 1);
        let third = publish(&store, &target, &|_, _| {}).expect("publish the new epoch");
        assert_eq!((third.epochs, third.through_epoch), (1, 3));
    }

    #[test]
    fn a_second_store_is_refused_before_it_writes_anything() {
        let dir = tempfile::tempdir().expect("dir");
        let (one, two, target_dir) = (dir.path().join("one"), dir.path().join("two"), dir.path().join("shared"));
        store_with_epochs(&one, 0, 1);
        store_with_epochs(&two, 0, 1);
        let target = LocalDir::new(&target_dir);
        publish(&one, &target, &|_, _| {}).expect("the first store publishes");
        let before = target.list("").expect("list");
        let refused = publish(&two, &target, &|_, _| {}).expect_err("the second is refused");
        assert!(matches!(&refused, PublishError::Conflict { what, .. } if what.contains("store.json")), "{refused}");
        assert_eq!(target.list("").expect("list"), before, "nothing written");

        // The same store copied to a second machine that sealed on its own: a fork. Its
        // epoch 2 differs from the one published; it is refused at that epoch.
        let fork = dir.path().join("fork");
        copy_dir(&one, &fork);
        store_with_epochs(&one, 100, 1);
        publish(&one, &target, &|_, _| {}).expect("the original publishes epoch 2");
        store_with_epochs(&fork, 200, 1);
        let refused = publish(&fork, &target, &|_, _| {}).expect_err("the fork is refused");
        assert!(matches!(&refused, PublishError::Conflict { what, .. } if what.contains("epoch 2")), "{refused}");
    }

    fn copy_dir(from: &Path, to: &Path) {
        for name in LocalDir::new(from).list("").expect("list") {
            let target = to.join(&name);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("dir");
            std::fs::copy(from.join(&name), target).expect("copy");
        }
    }
}
