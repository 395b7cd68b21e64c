//! Prometheus metrics, in the text exposition format, from atomics: nothing on the hot
//! path takes a lock. Per-source figures come from the writer's source tracker.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latency buckets in seconds, from 100 µs to 10 s.
const BUCKETS: [f64; 14] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", count.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}", self.sum_micros.load(Relaxed) as f64 / 1e6);
    }
}

/// The transports input arrives by, for per-transport counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    SyslogTls,
    SyslogTcp,
    SyslogUdp,
}

impl Transport {
    const ALL: [Transport; 4] = [Transport::Http, Transport::SyslogTls, Transport::SyslogTcp, Transport::SyslogUdp];
    pub fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::SyslogTls => "syslog_tls",
            Transport::SyslogTcp => "syslog_tcp",
            Transport::SyslogUdp => "syslog_udp",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Why a request or connection was turned away before its input was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated,
    Forbidden,
    TooLarge,
    QueueFull,
    Timeout,
    TlsHandshake,
    BadFraming,
    UnsupportedMediaType,
    /// The source spent its quarantine or context budget.
    QuarantineBudget,
}

impl Refusal {
    const ALL: [Refusal; 9] = [
        Refusal::Unauthenticated,
        Refusal::Forbidden,
        Refusal::TooLarge,
        Refusal::QueueFull,
        Refusal::Timeout,
        Refusal::TlsHandshake,
        Refusal::BadFraming,
        Refusal::UnsupportedMediaType,
        Refusal::QuarantineBudget,
    ];
    fn label(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Forbidden => "forbidden",
            Refusal::TooLarge => "too_large",
            Refusal::QueueFull => "queue_full",
            Refusal::Timeout => "timeout",
            Refusal::TlsHandshake => "tls_handshake",
            Refusal::BadFraming => "bad_framing",
            Refusal::QuarantineBudget => "budget_spent",
            Refusal::UnsupportedMediaType => "unsupported_media_type",
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    received: [AtomicU64; 4],
    quarantined: [AtomicU64; 4],
    refused: [AtomicU64; 9],
    pub acknowledged: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub commits: AtomicU64,
    pub seals: AtomicU64,
    pub durable_seq: AtomicU64,
    pub searches: AtomicU64,
    /// The newest epoch the published copy holds whole (`[publish]`).
    pub published_epoch: AtomicU64,
    pub publish_failures: AtomicU64,
    pub fsync_seconds: Histogram,
    pub ack_seconds: Histogram,
}

impl Metrics {
    pub fn received(&self, transport: Transport, n: u64) {
        self.received[transport.index()].fetch_add(n, Relaxed);
    }
    pub fn quarantined(&self, transport: Transport, n: u64) {
        self.quarantined[transport.index()].fetch_add(n, Relaxed);
    }
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    /// The exposition text; `queue` is (events waiting, capacity), `sources` the per-source
    /// lines the writer renders.
    pub fn render(&self, queue: (u64, u64), sources: &str) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        counter(&mut out, "loggvakt_received_events_total", "Events and messages received, before mapping.");
        for t in Transport::ALL {
            let _ = writeln!(out, "loggvakt_received_events_total{{transport=\"{}\"}} {}", t.label(), self.received[t.index()].load(Relaxed));
        }
        counter(&mut out, "loggvakt_quarantined_total", "Messages or Bundle entries that could not be mapped, kept in the quarantine.");
        for t in Transport::ALL {
            let _ = writeln!(out, "loggvakt_quarantined_total{{transport=\"{}\"}} {}", t.label(), self.quarantined[t.index()].load(Relaxed));
        }
        counter(&mut out, "loggvakt_refused_total", "Requests and connections turned away before their input was taken.");
        for r in Refusal::ALL {
            let _ = writeln!(out, "loggvakt_refused_total{{reason=\"{}\"}} {}", r.label(), self.refused[r as usize].load(Relaxed));
        }
        for (name, help, value) in [
            ("loggvakt_acknowledged_events_total", "Events stored durably (fsynced) and acknowledged.", &self.acknowledged),
            ("loggvakt_duplicate_events_total", "Resent events recognised by their id and acknowledged again, stored once.", &self.duplicates),
            ("loggvakt_conflicting_events_total", "Events whose id was already stored with different content (quarantined).", &self.conflicts),
            ("loggvakt_commits_total", "Group commits (one fsync each).", &self.commits),
            ("loggvakt_seals_total", "Epochs sealed into Parquet segments with a signed checkpoint.", &self.seals),
            ("loggvakt_searches_total", "ITI-81 searches served (each is logged in the journal).", &self.searches),
            ("loggvakt_publish_failures_total", "Attempts to publish sealed epochs ([publish]) that failed; retried at the next interval.", &self.publish_failures),
        ] {
            counter(&mut out, name, help);
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP loggvakt_durable_seq Sequence number of the last durable record.\n# TYPE loggvakt_durable_seq gauge\nloggvakt_durable_seq {}",
            self.durable_seq.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP loggvakt_published_epoch The newest epoch the published copy holds whole (0: none, or not published).\n# TYPE loggvakt_published_epoch gauge\nloggvakt_published_epoch {}",
            self.published_epoch.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP loggvakt_queue_depth_events Events accepted and waiting to be made durable.\n# TYPE loggvakt_queue_depth_events gauge\nloggvakt_queue_depth_events {}",
            queue.0
        );
        let _ = writeln!(out, "# HELP loggvakt_queue_capacity_events The queue's bound.\n# TYPE loggvakt_queue_capacity_events gauge\nloggvakt_queue_capacity_events {}", queue.1);
        self.fsync_seconds.render(&mut out, "loggvakt_fsync_seconds", "Time of one group commit's fsync of the write-ahead journal.");
        self.ack_seconds.render(&mut out, "loggvakt_ack_seconds", "From a request's input being read to its durable acknowledgement.");
        out.push_str(sources);
        out
    }
}
