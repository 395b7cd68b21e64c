//! The memory pool's high-water mark, so a review reports the most each of its steps held
//! at once: the measurement that sizes parts (`parts.rs`), taken where it happens.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::error::Result;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// A pool that passes everything to `inner` and remembers the most reserved at once since
/// the last [`PeakPool::take_peak`].
#[derive(Debug)]
pub struct PeakPool {
    inner: Arc<dyn MemoryPool>,
    peak: AtomicUsize,
}

impl PeakPool {
    pub fn new(inner: Arc<dyn MemoryPool>) -> PeakPool {
        PeakPool { inner, peak: AtomicUsize::new(0) }
    }

    /// The most reserved at once since the last call; starts the next measurement from what
    /// is reserved now.
    pub fn take_peak(&self) -> usize {
        self.peak.swap(self.inner.reserved(), Ordering::Relaxed)
    }

    fn note(&self) {
        self.peak.fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl fmt::Display for PeakPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn the_peak_is_the_most_held_at_once_and_restarts_from_what_is_held() {
        let pool: Arc<dyn MemoryPool> = Arc::new(PeakPool::new(Arc::new(GreedyMemoryPool::new(1000))));
        let a = MemoryConsumer::new("a").register(&pool);
        let b = MemoryConsumer::new("b").register(&pool);
        a.try_grow(300).unwrap();
        b.try_grow(500).unwrap();
        b.shrink(400);
        assert!(a.try_grow(800).is_err(), "the limit still holds");
        let peak = pool.downcast_ref::<PeakPool>().unwrap();
        assert_eq!(peak.take_peak(), 800);
        assert_eq!(peak.take_peak(), 400, "after a measurement, the next starts from what is held");
    }
}
