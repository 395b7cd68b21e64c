//! The committed records not yet sealed into segments, as searches and reads see them:
//! shared with the writer, not copied, and read without the writer.
//!
//! After each group commit the writer publishes the newly durable records as one chunk of
//! (sequence number, shared event); after a seal it forgets the chunks the new segments
//! hold. A search takes a snapshot (the list of chunks, a pointer each) and scans it on the
//! blocking pool, so no acknowledgement ever waits behind a search, and a search holds
//! nothing but pointers to events the journal holds anyway.

use std::sync::{Arc, RwLock};

use loggvakt_model::AccessEvent;

/// One commit's records, in sequence order.
pub type Chunk = Arc<Vec<(u64, Arc<AccessEvent>)>>;

#[derive(Default)]
pub struct UnsealedView {
    chunks: RwLock<Vec<Chunk>>,
}

impl UnsealedView {
    /// Adds the records a commit made durable.
    pub fn publish(&self, records: Vec<(u64, Arc<AccessEvent>)>) {
        if records.is_empty() {
            return;
        }
        if let Ok(mut chunks) = self.chunks.write() {
            chunks.push(Arc::new(records));
        }
    }

    /// Takes out the chunks whose records are all sealed through `seq`; the caller frees
    /// them where it costs nothing (the last pointer to half a million events may be here).
    pub fn forget_through(&self, seq: u64) -> Vec<Chunk> {
        let Ok(mut chunks) = self.chunks.write() else { return vec![] };
        let keep_from = chunks.partition_point(|c| c.last().is_some_and(|(last, _)| *last <= seq));
        chunks.drain(..keep_from).collect()
    }

    /// The chunks as they are now.
    pub fn snapshot(&self) -> Vec<Chunk> {
        self.chunks.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The unsealed record with this sequence number, if it is here.
    pub fn get(&self, seq: u64) -> Option<Arc<AccessEvent>> {
        let chunks = self.chunks.read().ok()?;
        let chunk = chunks.iter().find(|c| c.first().is_some_and(|(first, _)| *first <= seq) && c.last().is_some_and(|(last, _)| seq <= *last))?;
        let at = chunk.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(chunk[at].1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Arc<AccessEvent> {
        Arc::new(loggvakt_journal::own::event("e".into(), "983971636", "other", "test", loggvakt_model::Timestamp(0), String::new()))
    }

    #[test]
    fn published_until_sealed() {
        let view = UnsealedView::default();
        view.publish((1..=3).map(|s| (s, event())).collect());
        view.publish((4..=5).map(|s| (s, event())).collect());
        assert!(view.get(4).is_some() && view.get(6).is_none());
        assert_eq!(view.snapshot().len(), 2);
        assert_eq!(view.forget_through(3).len(), 1);
        assert!(view.get(2).is_none() && view.get(5).is_some());
    }
}
