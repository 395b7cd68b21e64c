//! Detection on an Apache DataFusion Ballista cluster.
//!
//! This crate owns three things:
//! - the processes: [`run_scheduler`] and [`run_executor`], Ballista 55's scheduler and
//!   executor built into the `loggvakt` binary (`loggvakt cluster scheduler|executor`), so a
//!   cluster runs the same DataFusion, the same functions and the same table formats as a
//!   local review;
//! - the client side: [`connect`] gives the session a review (`loggvakt detect --cluster`)
//!   runs its SQL on: the scheduler plans each query, the executors run it;
//! - what travels between them: the codec for the tables a review makes itself (the events
//!   pinned to a checkpoint, small in-memory tables), and the object stores every process
//!   reads the store through (local paths, `s3://` buckets configured from each process's
//!   own environment: credentials never travel in a plan).
//!
//! It must not hold review logic: the views, detectors and queues are `loggvakt-analyse`'s
//! and run unchanged here, which is what makes a cluster's queues the same as a local run's.
//! Nor does it write to a store: a review is logged by the store's owner, once, whatever
//! ran its queries.

mod codec;
mod process;
mod registry;

pub use codec::ReviewCodec;
pub use process::{run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};
pub use registry::StoreRegistry;

use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

/// Ballista's scheduler port, when a URL names none.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// What can go wrong reaching or running a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{url}: {reason} (a scheduler is named df://host:port, as 'loggvakt cluster scheduler' prints it)")]
    BadUrl { url: String, reason: String },
    #[error("no Ballista scheduler answers at {url}: {reason}; start one with 'loggvakt cluster scheduler' (deploy/ has the recipes)")]
    Unreachable { url: String, reason: String },
    #[error("{what}: {reason}")]
    Setup { what: String, reason: String },
}

/// The session configuration every process of a review's cluster uses: Ballista's, with
/// loggvakt's codec, so the tables a review makes itself can be planned remotely.
///
/// Ballista's adaptive planner is off: with it, one detector's job (a join of a review's
/// views) kept adding stages, thousands within minutes, and never finished; the static
/// planner runs every view and detector.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_information_schema(true)
        .with_ballista_logical_extension_codec(Arc::new(ReviewCodec::default()))
        .with_ballista_adaptive_query_planner(false)
}

/// The runtime every process of a cluster reads the store through: local paths, and
/// buckets configured from the process's own environment ([`StoreRegistry`]).
pub fn runtime_env() -> datafusion::error::Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(StoreRegistry::default())).build_arc()
}

/// A session state with the functions a review's SQL may call and the object stores it may
/// read, on `config`: what the scheduler plans with and the client starts from.
pub fn session_state(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let runtime = runtime_env()?;
    let mut state = SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
    // Added to DataFusion's own functions (the builder's `with_scalar_functions` would
    // replace them, and the scheduler could not read back a plan calling `upper`).
    state.register_udf(Arc::new(loggvakt_analyse::PartFunction::udf()))?;
    Ok(state)
}

/// Connects a review to the scheduler at `url` (`df://host:port`): the session its queries
/// run on. The scheduler must answer now; a query is planned by it and run by its executors.
pub async fn connect(url: &str) -> Result<SessionState, ClusterError> {
    let parsed = url::Url::parse(url).map_err(|e| ClusterError::BadUrl { url: url.to_owned(), reason: e.to_string() })?;
    if parsed.scheme() != "df" {
        return Err(ClusterError::BadUrl { url: url.to_owned(), reason: format!("the scheme is {}, not df", parsed.scheme()) });
    }
    let host = parsed.host_str().ok_or_else(|| ClusterError::BadUrl { url: url.to_owned(), reason: "no host".into() })?;
    let port = parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT);
    // Ballista connects lazily, at the first query; a review should fail before it starts.
    match tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(ClusterError::Unreachable { url: url.to_owned(), reason: e.to_string() }),
        Err(_) => return Err(ClusterError::Unreachable { url: url.to_owned(), reason: "no answer in 10 s".into() }),
    }
    let setup = |e: datafusion::error::DataFusionError| ClusterError::Setup { what: format!("a session on {url}"), reason: e.to_string() };
    let state = session_state(session_config()).map_err(setup)?;
    let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await.map_err(setup)?;
    Ok(ctx.state())
}
