//! How much refused input each source may have kept in the quarantine per hour.
//!
//! Refused input is kept whole so an operator can see and retry it, which makes the
//! quarantine the one place a sender can make the store grow without sending valid
//! events. Each source gets `limits.quarantine_bytes_per_hour`; past it, refused input is
//! answered 429 with `Retry-After` and not kept, so a broken or hostile sender costs at
//! most its budget, and the others are unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);

/// A source's refused input would go over its hourly budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source '{source_name}' has had {used} bytes of refused input kept in the quarantine this hour, and this would take it over its budget of {budget} bytes (limits.quarantine_bytes_per_hour)")]
pub struct BudgetSpent {
    pub source_name: String,
    pub used: u64,
    pub budget: u64,
}

pub struct QuarantineBudget {
    bytes_per_hour: u64,
    spent: Mutex<HashMap<String, (Instant, u64)>>,
}

impl QuarantineBudget {
    pub fn new(bytes_per_hour: u64) -> Self {
        QuarantineBudget { bytes_per_hour, spent: Mutex::new(HashMap::new()) }
    }

    /// Takes `bytes` from `source`'s budget for this hour, or says why it cannot.
    pub fn charge(&self, source: &str, bytes: u64) -> Result<(), BudgetSpent> {
        let Ok(mut spent) = self.spent.lock() else { return Ok(()) };
        let now = Instant::now();
        let (since, used) = spent.entry(source.to_owned()).or_insert((now, 0));
        if now.duration_since(*since) >= WINDOW {
            (*since, *used) = (now, 0);
        }
        if *used + bytes > self.bytes_per_hour {
            return Err(BudgetSpent { source_name: source.to_owned(), used: *used, budget: self.bytes_per_hour });
        }
        *used += bytes;
        Ok(())
    }

    /// Seconds until the longest-running window ends: a safe time to try again.
    pub fn retry_after_secs(&self) -> u64 {
        let Ok(spent) = self.spent.lock() else { return WINDOW.as_secs() };
        let oldest = spent.values().map(|(since, _)| since.elapsed()).max().unwrap_or_default();
        WINDOW.saturating_sub(oldest).as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_and_bounded() {
        let budget = QuarantineBudget::new(100);
        assert!(budget.charge("a", 60).is_ok());
        assert!(budget.charge("a", 60).unwrap_err().to_string().contains("budget of 100 bytes"));
        assert!(budget.charge("b", 60).is_ok(), "one source's spending is not another's");
        assert!(budget.retry_after_secs() <= 3600);
    }
}
