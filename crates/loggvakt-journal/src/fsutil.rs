//! Durable file operations: write to a temporary name, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::JournalError;

pub fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    // `Path::parent` of a bare relative name is "", which means the current directory.
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| JournalError::io(dir, e))
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entries changed.
pub fn create_dir_durable(dir: &Path) -> Result<(), JournalError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(JournalError::io(dir, e)),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| JournalError::io(&tmp, e))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(|e| JournalError::io(&tmp, e))?;
    rename_durable(&tmp, path)
}

pub fn rename_durable(from: &Path, to: &Path) -> Result<(), JournalError> {
    fs::rename(from, to).map_err(|e| JournalError::io(to, e))?;
    match to.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

fn ends_mid_line(path: &Path) -> Result<bool, JournalError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| JournalError::io(path, e))?;
    let len = file.metadata().map_err(|e| JournalError::io(path, e))?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).and_then(|_| file.read_exact(&mut last)).map_err(|e| JournalError::io(path, e))?;
    Ok(last[0] != b'\n')
}

/// An append-only side file (quarantine, kept context): created with its directory on the
/// first append, made durable by `sync`.
pub(crate) struct AppendLog {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    unsynced: bool,
}

impl AppendLog {
    pub fn new(path: PathBuf) -> Self {
        AppendLog { path, out: None, unsynced: false }
    }

    pub fn append(&mut self, parts: &[&[u8]]) -> Result<(), JournalError> {
        if self.out.is_none() {
            let parent = self.path.parent().unwrap_or(Path::new("."));
            create_dir_durable(parent)?;
            let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| JournalError::io(&self.path, e))?;
            sync_dir(parent)?;
            let mut out = BufWriter::new(file);
            // A crash may have cut the last line short; start on a fresh line so that
            // only the cut line is lost, not the next one too.
            if ends_mid_line(&self.path)? {
                out.write_all(b"\n").map_err(|e| JournalError::io(&self.path, e))?;
            }
            self.out = Some(out);
        }
        if let Some(out) = self.out.as_mut() {
            for part in parts {
                out.write_all(part).map_err(|e| JournalError::io(&self.path, e))?;
            }
            self.unsynced = true;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        if let (Some(out), true) = (self.out.as_mut(), self.unsynced) {
            out.flush().and_then(|_| out.get_ref().sync_data()).map_err(|e| JournalError::io(&self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
