//! Who appends for a command: the daemon that owns the store, over its admin channel
//! (`STORE/admin.sock`; no signing key needed), or, when no daemon runs, the command itself
//! (it takes the writer lock and needs the key). Either way the records are the same,
//! built by `loggvakt_journal::own`.

use std::path::Path;

use anyhow::{bail, Context};
use loggvakt_journal::own::{ContextSnapshot, ReviewRun};
use loggvakt_journal::{Journal, JournalOptions};
use loggvakt_serve::admin::{AdminClient, Request};
use loggvakt_serve::retry::RetryLine;

pub enum StoreWriter {
    Daemon(AdminClient),
    Local(Box<Journal>),
}

impl StoreWriter {
    /// The daemon's channel if a daemon owns `store`; else the store opened here with `key`.
    /// `what` names the command in the error that says a key is needed.
    pub fn open(store: &Path, key: Option<&Path>, what: &str) -> anyhow::Result<StoreWriter> {
        if let Some(client) = AdminClient::connect(store) {
            return Ok(StoreWriter::Daemon(client));
        }
        if loggvakt_journal::writer_is_running(store) {
            bail!(
                "another process writes {} (a daemon or an ingest) and no admin channel answers at {}; wait for it to finish, or run {what} while the daemon runs",
                store.display(),
                loggvakt_serve::admin::socket_path(store).display()
            );
        }
        let Some(key) = key else {
            bail!(
                "no daemon owns {}, so {what} opens the store itself, and every record it adds is signed: pass --key FILE or set LOGGVAKT_SIGNING_KEY (with a daemon running, no key is needed)",
                store.display()
            );
        };
        let key = crate::keys::read_signing_key(key)?;
        let (journal, _) = Journal::open(store, key, JournalOptions::default()).with_context(|| format!("opening store {}", store.display()))?;
        Ok(StoreWriter::Local(Box::new(journal)))
    }

    /// How the command reaches the store, for its report.
    pub fn describe(&self) -> String {
        match self {
            StoreWriter::Daemon(c) => format!("through the daemon's admin channel {}", c.path().display()),
            StoreWriter::Local(_) => "with the store opened directly (no daemon running)".into(),
        }
    }

    /// Seals every committed record; the size of the signed checkpoint that covers them
    /// (0: the store holds no records yet).
    pub fn seal(&mut self) -> anyhow::Result<u64> {
        match self {
            StoreWriter::Daemon(c) => Ok(c.seal()?),
            StoreWriter::Local(journal) => {
                journal.seal()?;
                Ok(journal.durable_seq())
            }
        }
    }

    /// Appends a review run's records (durably); how many.
    pub fn record_review(&mut self, run: &ReviewRun) -> anyhow::Result<usize> {
        match self {
            StoreWriter::Daemon(c) => {
                let value = c.call(&Request::RecordReview { run: run.clone() })?;
                Ok(value["records"].as_u64().unwrap_or(0) as usize)
            }
            StoreWriter::Local(journal) => {
                let records = loggvakt_journal::own::review_run(run, loggvakt_model::Timestamp::now());
                let count = records.len();
                for record in records {
                    journal.append(record)?;
                }
                journal.commit()?;
                Ok(count)
            }
        }
    }

    /// Appends the record of a context snapshot that became current (durably).
    pub fn record_context_snapshot(&mut self, snapshot: &ContextSnapshot) -> anyhow::Result<()> {
        match self {
            StoreWriter::Daemon(c) => {
                c.call(&Request::RecordContextSnapshot { snapshot: snapshot.clone() })?;
            }
            StoreWriter::Local(journal) => {
                journal.append(loggvakt_journal::own::context_snapshot(snapshot, loggvakt_model::Timestamp::now()))?;
                journal.commit()?;
            }
        }
        Ok(())
    }

    /// Retries quarantined entries: by the daemon with its own sources, or here with those
    /// of `config` (the daemon's configuration file).
    pub fn retry(&mut self, store: &Path, config: Option<&Path>, ids: &[String], all: bool) -> anyhow::Result<Vec<RetryLine>> {
        match self {
            StoreWriter::Daemon(c) => {
                if config.is_some() {
                    eprintln!("note: the daemon retries with its own configuration; --config is not read");
                }
                let value = c.call(&Request::RetryQuarantine { ids: ids.to_vec(), all })?;
                serde_json::from_value(value).context("the daemon's retry report is not understood")
            }
            StoreWriter::Local(journal) => {
                let config = loggvakt_serve::Config::load(config, std::env::vars())?;
                let sources = loggvakt_serve::identity::Sources::from_config(&config.sources)?;
                let remapped = loggvakt_serve::retry::remap_chosen(store, &sources, ids, all)?;
                Ok(loggvakt_serve::retry::store_remapped(journal, remapped)?)
            }
        }
    }

    /// Ends the command's use of the store: a local journal seals what it added.
    pub fn close(self) -> anyhow::Result<()> {
        if let StoreWriter::Local(journal) = self {
            journal.close()?;
        }
        Ok(())
    }
}
