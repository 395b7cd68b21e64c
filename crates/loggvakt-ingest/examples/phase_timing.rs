//! Times the phases of ingest on one NDJSON file, single-threaded: where does the time go?
//! `cargo run --release -p loggvakt-ingest --example phase_timing FILE.ndjson`

// A developer's tool, run by hand: it prints, and stops at the first error.
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

// The same allocator as the loggvakt binary, so the figures compare.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let path = std::env::args().nth(1).expect("usage: phase_timing FILE.ndjson");
    let data = std::fs::read(&path).expect("read");
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let ctx = loggvakt_fhir::ContextIndex::new();
    let t = Instant::now();
    let mut n = 0;
    for l in &lines {
        n += std::str::from_utf8(l).map(|s| s.len()).unwrap_or(0);
    }
    println!("utf8 check: {:?} ({} bytes)", t.elapsed(), n);
    let t = Instant::now();
    let mut count = 0;
    for l in &lines {
        count += serde_json::from_slice::<serde_json::Value>(l).map(|_| 1).unwrap_or(0);
    }
    println!("serde_json::Value parse: {:?} ({count})", t.elapsed());
    let t = Instant::now();
    let mut events = Vec::new();
    for l in &lines {
        for d in loggvakt_fhir::decode_message(l, &ctx, loggvakt_model::Timestamp(0), 8 << 20) {
            if let loggvakt_fhir::Decoded::Event { event, .. } = d {
                events.push(event);
            }
        }
    }
    println!("decode+map: {:?} for {} lines -> {} events", t.elapsed(), lines.len(), events.len());
    let t = Instant::now();
    let prepared: Vec<_> = events.iter().cloned().map(loggvakt_journal::PreparedRecord::new).collect();
    println!("encode+leaf: {:?}", t.elapsed());
    drop(prepared);
}
