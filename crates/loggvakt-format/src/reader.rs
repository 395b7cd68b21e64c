//! Reading sealed events back, for tools and tests. Analyses read the Parquet directly.

use std::path::Path;

use loggvakt_model::{AccessEvent, EventColumns};

use crate::layout::read_manifests;
use crate::segment::{SegmentFile, SEQ_COLUMN};
use crate::StoreError;

/// Every sealed event with its sequence number, in sequence order.
pub fn read_sealed_events(store: &Path) -> Result<Vec<(u64, AccessEvent)>, StoreError> {
    let mut out = Vec::new();
    for (manifest, _, _) in read_manifests(store)? {
        for segment in &manifest.segments {
            read_segment_events(&store.join(&segment.path), |_, _| true, &mut out)?;
        }
    }
    out.sort_by_key(|(seq, _)| *seq);
    Ok(out)
}

/// The events of one segment file that `keep` accepts, with their sequence numbers, in
/// file order, appended to `out`.
pub fn read_segment_events(path: &Path, mut keep: impl FnMut(u64, &AccessEvent) -> bool, out: &mut Vec<(u64, AccessEvent)>) -> Result<(), StoreError> {
    visit_segment_events(path, |seq, row| {
        let event = row.event();
        if keep(seq, &event) {
            out.push((seq, event));
        }
    })
}

/// One row of a segment, read into an event only if asked: a caller that needs few of the
/// rows (a search's first page) does not pay for building the others.
pub struct SegmentRow<'a> {
    columns: &'a EventColumns<'a>,
    row: usize,
}

impl SegmentRow<'_> {
    pub fn event(&self) -> AccessEvent {
        self.columns.event(self.row)
    }
}

/// Hands the rows of one segment file to `visit`, in file order (not sequence order), one
/// record batch in memory at a time: a caller that keeps only some of them holds only those.
pub fn visit_segment_events(path: &Path, mut visit: impl FnMut(u64, SegmentRow<'_>)) -> Result<(), StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt { path: path.to_owned(), detail };
    let file = SegmentFile::open(path, 8192)?;
    for batch in file.reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        let columns = EventColumns::new(&batch).map_err(|e| corrupt(e.to_string()))?;
        let seqs =
            batch.column_by_name(SEQ_COLUMN).and_then(|c| c.as_any().downcast_ref::<arrow_array::Int64Array>().cloned()).ok_or_else(|| corrupt("seq column missing".into()))?;
        for row in 0..batch.num_rows() {
            visit(seqs.value(row) as u64, SegmentRow { columns: &columns, row });
        }
    }
    Ok(())
}
