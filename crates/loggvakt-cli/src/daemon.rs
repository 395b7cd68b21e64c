//! `loggvakt serve`, `loggvakt sources` and `loggvakt quarantine`: the daemon and what an
//! operator asks of it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use loggvakt_journal::{read_quarantine_records, read_retries};
use loggvakt_serve::tracker::{StateFile, STATE_FILE};
use loggvakt_serve::Config;

use crate::owner::StoreWriter;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The store directory (created if missing). The daemon is its only writer while it runs.
    #[arg(long, env = "LOGGVAKT_STORE")]
    pub store: PathBuf,
    /// Private key that signs checkpoints (from 'loggvakt keygen').
    #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
    pub key: PathBuf,
    /// TOML configuration: listeners, TLS, limits and the sources allowed to send (see
    /// deploy/loggvakt.toml). LOGGVAKT_<SECTION>__<KEY> environment variables override it.
    #[arg(long, env = "LOGGVAKT_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), std::env::vars())?;
    let key = crate::keys::read_signing_key(&args.key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("loggvakt-serve").build().context("starting the async runtime")?;
    runtime.block_on(loggvakt_serve::run(args.store.clone(), key, config, |listening| {
        // One line on stdout that scripts (and the tests) can wait for.
        println!("listening {}", serde_json::to_string(listening).unwrap_or_default());
    }))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct SourcesArgs {
    #[arg(long, env = "LOGGVAKT_STORE")]
    pub store: PathBuf,
    /// Print the state as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn sources(args: &SourcesArgs) -> anyhow::Result<ExitCode> {
    let path = args.store.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("no source has sent to this store through the daemon yet ({} does not exist)", path.display());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let state: StateFile = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a source state file", path.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&state)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("sources as of {} (gaps and silences are also events in the journal, source system 'loggvakt')", state.updated_at);
    println!("{:<20} {:>10} {:>10} {:>8} {:>8} {:>6} {:>8} {:>10}  {:<25} status", "source", "received", "stored", "dupl.", "quarant.", "gaps", "missing", "last seq", "last seen");
    for (name, s) in &state.sources {
        let last_seen = s.last_seen.map(|t| loggvakt_model::Timestamp(t).to_rfc3339()).unwrap_or_else(|| "never".into());
        let status = match (s.silent_since, s.missing_events) {
            (Some(since), _) => format!("SILENT since {}", loggvakt_model::Timestamp(since).to_rfc3339()),
            (None, m) if m > 0 => format!("{m} events missing"),
            _ => "ok".into(),
        };
        println!(
            "{:<20} {:>10} {:>10} {:>8} {:>8} {:>6} {:>8} {:>10}  {:<25} {status}",
            name,
            s.received,
            s.stored,
            s.duplicates,
            s.quarantined,
            s.gaps_recorded,
            s.missing_events,
            s.last_seq.map_or("-".into(), |q| q.to_string()),
            last_seen
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum QuarantineCommand {
    /// List quarantined input: id, when, where from, and why.
    List {
        #[arg(long, env = "LOGGVAKT_STORE")]
        store: PathBuf,
        /// Only entries not yet retried successfully.
        #[arg(long)]
        pending: bool,
    },
    /// Show one entry whole, with its raw bytes.
    Show {
        #[arg(long, env = "LOGGVAKT_STORE")]
        store: PathBuf,
        id: String,
    },
    /// Map entries again (after a fix) and store what now maps. With the daemon running,
    /// the daemon does it (over its admin channel, with its own sources; no key needed);
    /// with none, this command opens the store itself.
    Retry {
        #[arg(long, env = "LOGGVAKT_STORE")]
        store: PathBuf,
        /// The signing key, needed only when no daemon runs.
        #[arg(long, env = "LOGGVAKT_SIGNING_KEY")]
        key: Option<PathBuf>,
        /// The daemon's configuration, for the sources' organisations and allowed systems
        /// (when no daemon runs; a running daemon uses its own).
        #[arg(long, env = "LOGGVAKT_CONFIG")]
        config: Option<PathBuf>,
        /// Entry ids from 'quarantine list'.
        ids: Vec<String>,
        /// Every entry not retried successfully yet.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
    },
}

pub fn quarantine(command: &QuarantineCommand) -> anyhow::Result<ExitCode> {
    match command {
        QuarantineCommand::List { store, pending } => {
            let retries = read_retries(store)?;
            let records = read_quarantine_records(store)?;
            let mut shown = 0;
            for r in &records {
                let retried = retries.get(&r.id);
                if *pending && retried.is_some() {
                    continue;
                }
                shown += 1;
                let status = retried.map_or("pending".to_owned(), |x| format!("retried {} ({} stored)", x.retried_at, x.stored.len()));
                let place = match (r.entry.line, r.entry.entry, r.entry.entries.len()) {
                    (Some(l), _, _) => format!(" line {l}"),
                    (None, Some(e), _) => format!(" entry[{e}]"),
                    (None, None, n) if n > 0 => format!(" {n} entries"),
                    _ => String::new(),
                };
                // Input, source names and reasons quote what a sender sent: shown with its
                // control characters escaped, so no one's terminal runs a sender's escapes.
                println!("{}  {}  {}{}  [{status}]\n    {}", r.id, terminal_safe(&r.entry.received_at), terminal_safe(&r.entry.input), place, terminal_safe(&r.entry.reason));
            }
            println!("{shown} of {} quarantined entries shown", records.len());
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Show { store, id } => {
            let record =
                read_quarantine_records(store)?.into_iter().find(|r| &r.id == id).with_context(|| format!("no quarantined entry has id {id} (see 'loggvakt quarantine list')"))?;
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "id": record.id, "entry": record.entry, "retried": read_retries(store)?.get(id) }))?);
            Ok(ExitCode::SUCCESS)
        }
        QuarantineCommand::Retry { store, key, config, ids, all } => retry(store, key.as_deref(), config.as_ref(), ids, *all),
    }
}

/// `text` with every control character (ANSI escapes, newlines, bells) written as `\u{..}`.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

fn retry(store: &std::path::Path, key: Option<&std::path::Path>, config: Option<&PathBuf>, ids: &[String], all: bool) -> anyhow::Result<ExitCode> {
    if ids.is_empty() && !all {
        bail!("name the entries to retry (ids from 'loggvakt quarantine list'), or pass --all");
    }
    let mut writer = StoreWriter::open(store, key, "quarantine retry")?;
    let lines = writer.retry(store, config.map(|p| p.as_path()), ids, all)?;
    let how = writer.describe();
    writer.close()?;
    let (mut stored_total, mut failed) = (0usize, 0usize);
    for line in &lines {
        if let Some(why) = &line.still_fails {
            failed += 1;
            println!("{}  still fails: {}", line.id, terminal_safe(why));
            continue;
        }
        for conflict in &line.conflicts {
            println!("{}  conflicts: {}", line.id, terminal_safe(conflict));
        }
        stored_total += line.stored.len();
        println!("{}  stored {} event(s) {:?}, {} already stored", line.id, line.stored.len(), line.stored, line.duplicates);
    }
    println!("{stored_total} event(s) stored; {failed} entr{} still fail ({how})", if failed == 1 { "y" } else { "ies" });
    Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}
