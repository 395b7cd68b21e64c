//! Reading sealed events back, for tools and tests. Analyses read the Parquet directly.

use std::path::Path;

use loggvakt_model::{AccessEvent, EventColumns};

use crate::layout::read_manifests;
use crate::segment::{SegmentFile, SEQ_COLUMN};
use crate::JournalError;

/// Every sealed event with its sequence number, in sequence order.
pub fn read_sealed_events(store: &Path) -> Result<Vec<(u64, AccessEvent)>, JournalError> {
    let mut out = Vec::new();
    for (manifest, _, _) in read_manifests(store)? {
        for segment in &manifest.segments {
            let path = store.join(&segment.path);
            let file = SegmentFile::open(&path, 8192)?;
            for batch in file.reader {
                let batch = batch.map_err(|e| JournalError::Corrupt { path: path.clone(), detail: e.to_string() })?;
                let columns = EventColumns::new(&batch).map_err(|e| JournalError::Corrupt { path: path.clone(), detail: e.to_string() })?;
                let seqs = batch
                    .column_by_name(SEQ_COLUMN)
                    .and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>().cloned())
                    .ok_or_else(|| JournalError::Corrupt { path: path.clone(), detail: "seq column missing".into() })?;
                for row in 0..batch.num_rows() {
                    out.push((seqs.value(row) as u64, columns.event(row)));
                }
            }
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}
