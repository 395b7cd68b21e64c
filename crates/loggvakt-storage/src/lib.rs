//! # loggvakt-storage
//!
//! Owns where a store's sealed bytes live, behind one small interface ([`Storage`]): read
//! an object, list the names under a prefix, and create an object only if no object of
//! that name exists. Two implementations, chosen by [`open`] from what the user typed: a
//! directory on this machine ([`LocalDir`]) and a bucket of an S3-compatible object store
//! ([`Bucket`], `object_store`'s S3 backend) named `s3://bucket/prefix`.
//!
//! Written promises, for every implementation (in the manner of Trillian Tessera's
//! storage drivers):
//! - [`Storage::create`] returns only once the object is durable where it lives: a local
//!   file is written under a temporary name, fsynced, linked into place and its directory
//!   fsynced; an S3 PUT is answered only after the server stored it.
//! - [`Storage::create`] never replaces an object. Of two writers creating one name, one
//!   gets [`Created::New`] and the other [`Created::AlreadyThere`]. On S3 that rests on the
//!   server honouring `If-None-Match: *`; a bucket to be written is first checked with
//!   [`Bucket::check_conditional_writes`], and a server that overwrites anyway is refused.
//! - An object is read whole or not at all: no reader sees half of a create.
//!
//! Must not: know the store's layout or formats (`loggvakt-format` does), hold a writer's
//! own state (its write-ahead journal, lock and idempotency cache stay on its local
//! disk), or print.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use bytes::Bytes;

/// Why an object could not be read, listed or created.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location}: not found")]
    NotFound { location: String },
    #[error("{location}: {source}")]
    Io { location: String, source: std::io::Error },
    #[error("{location}: {message}")]
    Remote { location: String, message: String },
    #[error("{location}: the server stored a second object under a name that a conditional write (If-None-Match: *) asked to create only if absent, so it does not support conditional writes and two writers could both seal one epoch; use a server that does (Amazon S3, MinIO, Ceph RGW, Cloudflare R2, s3s-fs)")]
    NoConditionalWrites { location: String },
    #[error("'{given}': {reason}")]
    BadLocation { given: String, reason: String },
}

/// What [`Storage::create`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The object was created by this call.
    New,
    /// An object of that name was there already; it was left as it was.
    AlreadyThere,
}

/// Where a store's sealed objects are kept. Names are relative to the store's root,
/// `/`-separated (`manifests/epoch-00000001.json`).
pub trait Storage: Send + Sync + fmt::Debug {
    /// The root, for messages: a directory's path or `s3://bucket/prefix`.
    fn location(&self) -> String;

    /// The object's bytes.
    fn read(&self, name: &str) -> Result<Bytes, StorageError>;

    /// Every object under `prefix` (a directory-like name such as `manifests`; `""` for
    /// all), at any depth, as names relative to the root, sorted bytewise. A prefix with
    /// nothing under it is an empty list.
    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;

    /// Creates the object if no object of that name exists; never replaces one.
    fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StorageError>;

    /// Checks, before a writer relies on it, that [`Storage::create`] never replaces an
    /// object here. A directory on this machine always keeps that promise.
    fn check_conditional_writes(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// The directory, when the store is one on this machine (a writer's lock and
    /// write-ahead files can only be there).
    fn local_dir(&self) -> Option<&Path> {
        None
    }

    /// Where `name` is, for messages.
    fn describe(&self, name: &str) -> String {
        format!("{}/{name}", self.location().trim_end_matches('/'))
    }

    /// The object's bytes, or `None` when there is no such object.
    fn read_if_exists(&self, name: &str) -> Result<Option<Bytes>, StorageError> {
        match self.read(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Opens the storage `given` names: `s3://bucket/prefix` for a bucket (endpoint, region
/// and credentials from the `AWS_*` environment variables, as [`Bucket::open`] says), any
/// other text a local directory.
pub fn open(given: &str) -> Result<Arc<dyn Storage>, StorageError> {
    open_with(given, &S3Settings::default())
}

/// Settings of a bucket's server given in a configuration file; each one given here is
/// taken over its `AWS_*` environment variable. Credentials are not among them: they stay
/// in the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never in a file
/// that is shown or copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// The server, for one other than Amazon's (`https://s3.example.no`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Plain HTTP (a server on loopback).
    pub allow_http: Option<bool>,
}

/// [`open`], with settings from a configuration file over the environment's.
pub fn open_with(given: &str, settings: &S3Settings) -> Result<Arc<dyn Storage>, StorageError> {
    if given.starts_with("s3://") {
        Ok(Arc::new(Bucket::open_with(given, settings)?))
    } else if given.contains("://") {
        Err(StorageError::BadLocation { given: given.to_owned(), reason: "only local directories and s3://bucket/prefix are supported".into() })
    } else {
        Ok(Arc::new(LocalDir::new(given)))
    }
}

/// A store in a directory on this machine.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn io(&self, path: &Path, source: std::io::Error) -> StorageError {
        StorageError::Io { location: path.display().to_string(), source }
    }
}

impl Storage for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn read(&self, name: &str) -> Result<Bytes, StorageError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound { location: path.display().to_string() }),
            Err(e) => Err(self.io(&path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        fn walk(dir: &Path, name: &str, out: &mut Vec<String>) -> Result<(), (PathBuf, std::io::Error)> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err((dir.to_owned(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| (dir.to_owned(), e))?;
                let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
                let child = if name.is_empty() { file } else { format!("{name}/{file}") };
                let kind = entry.file_type().map_err(|e| (entry.path(), e))?;
                if kind.is_dir() {
                    walk(&entry.path(), &child, out)?;
                } else {
                    out.push(child);
                }
            }
            Ok(())
        }
        let prefix = prefix.trim_matches('/');
        let mut out = Vec::new();
        walk(&self.path(prefix), prefix, &mut out).map_err(|(path, e)| self.io(&path, e))?;
        out.sort();
        Ok(out)
    }

    fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let path = self.path(name);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| self.io(&dir, e))?;
        // Written whole under a name of its own, then linked to the final name: `link`
        // fails when the name exists, so a create never replaces and never shows half.
        let tmp = dir.join(format!(".{}.{}.creating", path.file_name().and_then(|n| n.to_str()).unwrap_or("object"), random_hex()));
        let written = std::fs::File::create_new(&tmp).and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io(&tmp, e));
        }
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| self.io(&dir, e))?;
                Ok(Created::New)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::AlreadyThere),
            Err(e) => Err(self.io(&path, e)),
        }
    }

    fn local_dir(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// `s3://bucket/prefix` as the bucket's name and the prefix (no leading or trailing `/`).
pub fn split_bucket_url(url: &str) -> Result<(&str, &str), StorageError> {
    let bad = |reason: &str| StorageError::BadLocation { given: url.to_owned(), reason: reason.to_owned() };
    let rest = url.strip_prefix("s3://").ok_or_else(|| bad("a bucket is named s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket's name is missing"));
    }
    Ok((bucket, prefix.trim_matches('/')))
}

/// The S3 client for one bucket, configured as [`Bucket::open`] describes (the
/// environment's `AWS_*`, then `settings`): the one place a bucket's client is built, for
/// the store's own reads and writes and for DataFusion's scans of the same bucket. The
/// error is the builder's reason.
pub fn s3_object_store(bucket: &str, settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(allow_http) = settings.allow_http {
        builder = builder.with_allow_http(allow_http);
    }
    Ok(Arc::new(builder.build().map_err(|e| e.to_string())?))
}

/// A store in a bucket of an S3-compatible object store, under a prefix.
pub struct Bucket {
    url: String,
    store: Arc<dyn ObjectStore>,
    root: object_store::path::Path,
    /// The callers are synchronous (the verifier, the publisher), some on several threads
    /// at once (the verifier reads segments in parallel): each call is driven here, on a
    /// runtime whose I/O does not wait for any one caller.
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Bucket {
    /// Opens `s3://bucket/prefix`. The endpoint, region and credentials come from the
    /// environment as for AWS's own tools: `AWS_ENDPOINT_URL` (for a server other than
    /// Amazon's), `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, and
    /// `AWS_ALLOW_HTTP=true` for a server on plain HTTP (a test's, on loopback).
    pub fn open(url: &str) -> Result<Self, StorageError> {
        Self::open_with(url, &S3Settings::default())
    }

    /// [`Bucket::open`], with settings from a configuration file over the environment's.
    pub fn open_with(url: &str, settings: &S3Settings) -> Result<Self, StorageError> {
        let (bucket, prefix) = split_bucket_url(url)?;
        let store = s3_object_store(bucket, settings).map_err(|reason| StorageError::BadLocation { given: url.to_owned(), reason })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loggvakt-storage")
            .enable_all()
            .build()
            .map_err(|e| StorageError::Io { location: url.to_owned(), source: e })?;
        Ok(Bucket { url: format!("s3://{bucket}{}", if prefix.is_empty() { String::new() } else { format!("/{prefix}") }), store, root: prefix.into(), runtime })
    }

    fn path(&self, name: &str) -> object_store::path::Path {
        name.split('/').filter(|part| !part.is_empty()).fold(self.root.clone(), |path, part| path.join(part))
    }

    /// Runs one request to completion. Inside another runtime (the daemon's) a thread of
    /// its own runs it, as a runtime cannot be blocked on from within one.
    fn run<T: Send>(&self, request: impl std::future::Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(request);
        }
        std::thread::scope(|scope| match scope.spawn(|| self.runtime.block_on(request)).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    }

    fn remote(&self, name: &str, e: object_store::Error) -> StorageError {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { location: self.describe(name) },
            other => StorageError::Remote { location: self.describe(name), message: other.to_string() },
        }
    }
}

impl Storage for Bucket {
    /// Checks that the server refuses to replace an object on a conditional create, which
    /// is what keeps two writers from both sealing an epoch: creates one probe object
    /// twice under `.loggvakt/` and removes it. A server that accepts the second create
    /// (one that ignores `If-None-Match`) is [`StorageError::NoConditionalWrites`].
    fn check_conditional_writes(&self) -> Result<(), StorageError> {
        let name = format!(".loggvakt/conditional-write-check-{}", random_hex());
        let first = self.create(&name, Bytes::from_static(b"first"));
        let second = first.as_ref().ok().map(|_| self.create(&name, Bytes::from_static(b"second")));
        let path = self.path(&name);
        let _ = self.run(async { self.store.delete(&path).await });
        match (first?, second) {
            (Created::New, Some(Ok(Created::AlreadyThere))) => Ok(()),
            (Created::New, Some(Err(e))) => Err(e),
            _ => Err(StorageError::NoConditionalWrites { location: self.location() }),
        }
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn read(&self, name: &str) -> Result<Bytes, StorageError> {
        let path = self.path(name);
        self.run(async { self.store.get(&path).await?.bytes().await }).map_err(|e| self.remote(name, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.trim_matches('/');
        let under = self.path(prefix);
        let metas: Vec<object_store::ObjectMeta> = self.run(async { self.store.list(Some(&under)).try_collect().await }).map_err(|e| self.remote(prefix, e))?;
        let root = self.root.as_ref();
        let mut names: Vec<String> = metas
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref().to_owned();
                if root.is_empty() {
                    Some(full)
                } else {
                    full.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')).map(str::to_owned)
                }
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn create(&self, name: &str, bytes: Bytes) -> Result<Created, StorageError> {
        let path = self.path(name);
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.run(async { self.store.put_opts(&path, PutPayload::from(bytes), options).await }) {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyThere),
            Err(e) => Err(self.remote(name, e)),
        }
    }
}

/// 16 random hex digits, for names no other writer picks.
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness (never seen on Linux) the process id and time still separate writers.
    if getrandom::getrandom(&mut bytes).is_err() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        bytes = (now ^ u64::from(std::process::id())).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_create_never_replaces_and_lists_sorted_at_every_depth() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path());
        assert_eq!(store.create("manifests/b.json", Bytes::from_static(b"one")).unwrap(), Created::New);
        assert_eq!(store.create("manifests/b.json", Bytes::from_static(b"two")).unwrap(), Created::AlreadyThere);
        assert_eq!(store.read("manifests/b.json").unwrap(), Bytes::from_static(b"one"), "the first create stands");
        store.create("manifests/a.json", Bytes::from_static(b"a")).unwrap();
        store.create("data/t=x/d=1/seg.parquet", Bytes::from_static(b"s")).unwrap();
        assert_eq!(store.list("manifests").unwrap(), ["manifests/a.json", "manifests/b.json"]);
        assert_eq!(store.list("").unwrap(), ["data/t=x/d=1/seg.parquet", "manifests/a.json", "manifests/b.json"]);
        assert!(store.list("checkpoints").unwrap().is_empty());
        assert!(matches!(store.read("nothing"), Err(StorageError::NotFound { .. })));
        assert_eq!(store.read_if_exists("nothing").unwrap(), None);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("manifests")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind: {left:?}");
    }

    #[test]
    fn locations_are_a_directory_or_an_s3_url() {
        assert_eq!(open("/var/lib/loggvakt").unwrap().local_dir(), Some(Path::new("/var/lib/loggvakt")));
        assert!(matches!(open("gs://bucket/x"), Err(StorageError::BadLocation { .. })));
        assert!(matches!(Bucket::open("s3:///prefix"), Err(StorageError::BadLocation { .. })));
        let bucket = Bucket::open("s3://logg/region/").unwrap();
        assert_eq!(bucket.location(), "s3://logg/region");
        assert_eq!(bucket.describe("manifests/x.json"), "s3://logg/region/manifests/x.json");
        assert_eq!(bucket.path("data//t=a/x.parquet").as_ref(), "region/data/t=a/x.parquet");
    }
}
