//! Publishing while the daemon runs (`[publish]` in the configuration): a thread of its
//! own, at low priority, copies what the writer sealed to shared storage every
//! `interval_secs`, and once more after the last seal at shutdown, so a stopped daemon
//! leaves the copy whole. Acknowledgements never wait for it: the writer seals on its own
//! disk, and a slow or unreachable bucket only delays the copy (`loggvakt_published_epoch`
//! says how far it is). What it does is `loggvakt_journal::publish`, the same as the
//! `publish` command's.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use loggvakt_journal::publish::Publisher;

use crate::config::PublishConfig;
use crate::log::log;
use crate::metrics::Metrics;
use crate::ServeError;

/// The running publisher; [`PublishHandle::finish`] publishes what is left and stops it.
pub struct PublishHandle {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl PublishHandle {
    /// Opens the target (a bad location is a configuration error, said at start) and
    /// starts publishing to it.
    pub fn start(store: PathBuf, config: &PublishConfig, to: &str, metrics: Arc<Metrics>) -> Result<PublishHandle, ServeError> {
        let interval = Duration::from_secs(config.interval_secs.max(1));
        let target = loggvakt_storage::open_with(to, &config.s3_settings()).map_err(|e| ServeError::Config(format!("[publish] to: {e}")))?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("loggvakt-publish".into())
            .spawn(move || {
                crate::writer::lower_this_threads_priority();
                let mut publisher: Option<Publisher<'_>> = None;
                loop {
                    let last = stopping.0.lock().map_or(true, |stopped| *stopped);
                    if publisher.is_none() {
                        match Publisher::open(&store, target.as_ref()) {
                            Ok(p) => publisher = Some(p),
                            Err(e) => failed(&metrics, &target.location(), &e.to_string()),
                        }
                    }
                    if let Some(p) = publisher.as_mut() {
                        match p.publish_new(&|_, _| {}) {
                            Ok(report) => {
                                metrics.published_epoch.store(report.through_epoch, Relaxed);
                                if report.objects > 0 {
                                    log("info", "published", serde_json::json!({ "to": target.location(), "epochs": report.epochs, "snapshots": report.snapshots, "objects": report.objects, "bytes": report.bytes, "through_epoch": report.through_epoch }));
                                }
                            }
                            Err(e) => {
                                failed(&metrics, &target.location(), &e.to_string());
                                // Checked again from the start next time: the target may have changed.
                                publisher = None;
                            }
                        }
                    }
                    if last {
                        return;
                    }
                    let (lock, wake) = &*stopping;
                    if let Ok(stopped) = lock.lock() {
                        let _ = wake.wait_timeout_while(stopped, interval, |stopped| !*stopped);
                    }
                }
            })
            .map_err(|e| ServeError::Config(format!("publish thread: {e}")))?;
        Ok(PublishHandle { stop, thread })
    }

    /// Publishes what is sealed now (call it after the writer's last seal) and stops.
    pub fn finish(self) {
        let (lock, wake) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        wake.notify_all();
        let _ = self.thread.join();
    }
}

fn failed(metrics: &Metrics, to: &str, error: &str) {
    metrics.publish_failures.fetch_add(1, Relaxed);
    log("error", "publish_failed", serde_json::json!({ "to": to, "error": error, "then": "sealing goes on locally; publishing is tried again at the next interval" }));
}
