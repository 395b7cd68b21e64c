//! Where things live in a store directory, and how to list them.

use std::path::{Path, PathBuf};

use loggvakt_storage::Storage;
use serde::{Deserialize, Serialize};

use crate::manifest::{epoch_of_manifest_name, Manifest};
use crate::StoreError;

pub const STORE_FILE: &str = "store.json";
/// Held (flock) by the one writer while it runs.
pub const LOCK_FILE: &str = ".lock";
pub const STORE_FORMAT: &str = "loggvakt-store-1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreInfo {
    pub format: String,
    pub store_id: String,
    pub created: String,
}

impl StoreInfo {
    pub fn read(dir: &Path) -> Result<(StoreInfo, [u8; 16]), StoreError> {
        let path = dir.join(STORE_FILE);
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        Self::parse(&bytes, path)
    }

    /// The store's identity from wherever it is kept (a directory, a bucket).
    pub fn read_in(storage: &dyn Storage) -> Result<(StoreInfo, [u8; 16]), StoreError> {
        Self::parse(&storage.read(STORE_FILE)?, PathBuf::from(storage.describe(STORE_FILE)))
    }

    fn parse(bytes: &[u8], path: PathBuf) -> Result<(StoreInfo, [u8; 16]), StoreError> {
        let info: StoreInfo = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { path: path.clone(), detail: e.to_string() })?;
        if info.format != STORE_FORMAT {
            return Err(StoreError::Corrupt { path, detail: format!("store format '{}' is not {STORE_FORMAT}", info.format) });
        }
        let id = crate::chain::from_hex::<16>(&info.store_id).ok_or_else(|| StoreError::Corrupt { path, detail: "store_id is not 32 hex digits".into() })?;
        Ok((info, id))
    }
}

/// Files in `dir` whose name passes `keep`, sorted by name; a missing directory is empty.
pub fn list_sorted(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        if entry.file_name().to_str().is_some_and(&keep) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Files below `store/sub` whose name passes `keep`, relative to the store, sorted.
pub fn list_files_under(store: &Path, sub: &str, keep: impl Fn(&str) -> bool + Copy) -> Result<Vec<String>, StoreError> {
    let names = loggvakt_storage::LocalDir::new(store).list(sub)?;
    Ok(names.into_iter().filter(|name| keep(name.rsplit('/').next().unwrap_or(name))).collect())
}

/// Manifests by epoch, with their raw bytes (whose hash checkpoints sign).
pub fn read_manifests(store: &Path) -> Result<Vec<(Manifest, Vec<u8>, PathBuf)>, StoreError> {
    read_manifests_from(store, 1)
}

/// The manifests of epochs `from` on (by their file names; older ones are not read).
pub fn read_manifests_from(store: &Path, from: u64) -> Result<Vec<(Manifest, Vec<u8>, PathBuf)>, StoreError> {
    let found = read_manifests_in(&loggvakt_storage::LocalDir::new(store), from)?;
    Ok(found.into_iter().map(|(manifest, bytes, name)| (manifest, bytes, store.join(name))).collect())
}

/// The manifests of epochs `from` on, with their raw bytes and names (`manifests/…`),
/// read from wherever the store is kept.
pub fn read_manifests_in(storage: &dyn Storage, from: u64) -> Result<Vec<(Manifest, Vec<u8>, String)>, StoreError> {
    let mut out = Vec::new();
    for name in storage.list("manifests")? {
        let Some(epoch) = name.rsplit('/').next().and_then(epoch_of_manifest_name) else { continue };
        if epoch < from {
            continue;
        }
        let bytes = storage.read(&name)?.to_vec();
        out.push((Manifest::parse(&bytes, Path::new(&storage.describe(&name)))?, bytes, name));
    }
    out.sort_by_key(|(m, _, _)| m.epoch);
    Ok(out)
}

/// Manifest files with the epoch their names give, in epoch order, none of them read: the
/// writer's start-up needs the newest only (a day of 30-second seals is ~2 900 of them).
pub fn list_manifests(store: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out: Vec<(u64, PathBuf)> = list_sorted(&store.join("manifests"), |n| epoch_of_manifest_name(n).is_some())?
        .into_iter()
        .filter_map(|p| Some((epoch_of_manifest_name(p.file_name()?.to_str()?)?, p)))
        .collect();
    out.sort_by_key(|(epoch, _)| *epoch);
    Ok(out)
}

/// One manifest, with its raw bytes.
pub fn read_manifest(path: &Path) -> Result<(Manifest, Vec<u8>), StoreError> {
    let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
    Ok((Manifest::parse(&bytes, path)?, bytes))
}

pub fn list_checkpoints(store: &Path) -> Result<Vec<PathBuf>, StoreError> {
    list_sorted(&store.join("checkpoints"), |n| n.ends_with(".note"))
}

pub fn list_wal_files(store: &Path) -> Result<Vec<PathBuf>, StoreError> {
    list_sorted(&store.join("wal"), |n| n.ends_with(".wal"))
}

/// The digest of a directory's files as they are on disk: BLAKE3 over each file's path
/// (relative to `dir`, `/`-separated, sorted bytewise), a 0 byte, and the BLAKE3 of its
/// bytes. A review records it for the context snapshot it read (in the journal, so it is
/// chained and signed), and `verify` recomputes it.
pub fn files_digest(dir: &Path) -> Result<String, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::io(dir, std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let local = loggvakt_storage::LocalDir::new(dir);
    digest_of(&local, local.list("")?, "")
}

/// [`files_digest`] of the objects under `prefix` (a directory-like name) wherever the
/// store is kept; the names hashed are relative to `prefix`. Nothing under it is an error.
pub fn files_digest_in(storage: &dyn Storage, prefix: &str) -> Result<String, StoreError> {
    let names = storage.list(prefix)?;
    if names.is_empty() {
        return Err(StoreError::Corrupt { path: PathBuf::from(storage.describe(prefix)), detail: "no such directory, or nothing in it".into() });
    }
    digest_of(storage, names, prefix)
}

fn digest_of(storage: &dyn Storage, names: Vec<String>, prefix: &str) -> Result<String, StoreError> {
    let base = if prefix.is_empty() { String::new() } else { format!("{}/", prefix.trim_matches('/')) };
    let mut hasher = blake3::Hasher::new();
    for name in names {
        let bytes = storage.read(&name)?;
        hasher.update(name.strip_prefix(&base).unwrap_or(&name).as_bytes());
        hasher.update(&[0]);
        hasher.update(blake3::hash(&bytes).as_bytes());
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Where the context snapshot a review names lives (`context/snapshots/v000001`).
pub fn context_snapshot_dir(store: &Path, name: &str) -> PathBuf {
    store.join(context_snapshot_name(name))
}

/// The same, as a name inside the store (`context/snapshots/v000001`).
pub fn context_snapshot_name(name: &str) -> String {
    format!("context/snapshots/{name}")
}
