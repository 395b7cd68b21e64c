//! Append-only side files of the writer (the quarantine, the kept context): outside the
//! chain, durable by `sync`, robust to a line a crash cut short.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use loggvakt_format::fsutil::{create_dir_durable, sync_dir};

use crate::JournalError as StoreError;

fn ends_mid_line(path: &Path) -> Result<bool, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).and_then(|_| file.read_exact(&mut last)).map_err(|e| StoreError::io(path, e))?;
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

    pub fn append(&mut self, parts: &[&[u8]]) -> Result<(), StoreError> {
        if self.out.is_none() {
            let parent = self.path.parent().unwrap_or(Path::new("."));
            create_dir_durable(parent)?;
            let file = OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| StoreError::io(&self.path, e))?;
            sync_dir(parent)?;
            let mut out = BufWriter::new(file);
            // A crash may have cut the last line short; start on a fresh line so that
            // only the cut line is lost, not the next one too.
            if ends_mid_line(&self.path)? {
                out.write_all(b"\n").map_err(|e| StoreError::io(&self.path, e))?;
            }
            self.out = Some(out);
        }
        if let Some(out) = self.out.as_mut() {
            for part in parts {
                out.write_all(part).map_err(|e| StoreError::io(&self.path, e))?;
            }
            self.unsynced = true;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<(), StoreError> {
        if let (Some(out), true) = (self.out.as_mut(), self.unsynced) {
            out.flush().and_then(|_| out.get_ref().sync_data()).map_err(|e| StoreError::io(&self.path, e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
