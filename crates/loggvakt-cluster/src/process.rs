//! The scheduler and executor processes (`loggvakt cluster scheduler|executor`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

use crate::{runtime_env, session_config, session_state, ClusterError, ReviewCodec};

/// How a scheduler listens and when it gives up on an executor.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind: SocketAddr,
    /// An executor not heard from for this long is taken as lost: its tasks run again
    /// elsewhere (up to four times each), or the query fails naming the task. Ballista's
    /// default is 180 s, which left a review waiting three minutes on a killed executor.
    pub executor_timeout_secs: u64,
}

/// Where an executor finds its scheduler and how it serves the others.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `host:port`.
    pub scheduler: String,
    /// The address the executor listens on, and tells the scheduler and the other
    /// executors (they fetch its shuffle output from there).
    pub host: String,
    /// Arrow Flight port (shuffle data and results).
    pub port: u16,
    /// gRPC port (tasks from the scheduler).
    pub grpc_port: u16,
    /// Where shuffle files are written; they go when their job has ended.
    pub work_dir: PathBuf,
    /// Tasks run at once; the machine's cores by default.
    pub concurrent_tasks: usize,
    /// Seconds between heartbeats: what the scheduler's executor timeout is measured in.
    pub heartbeat_secs: u64,
}

fn setup(what: &str) -> impl Fn(ballista_core::error::BallistaError) -> ClusterError + '_ {
    move |e| ClusterError::Setup { what: what.to_owned(), reason: e.to_string() }
}

/// Runs a scheduler until the process ends. `ready` is called once it listens.
pub async fn run_scheduler(options: SchedulerOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ClusterError> {
    let listener = tokio::net::TcpListener::bind(options.bind).await.map_err(|e| ClusterError::Setup { what: format!("listening on {}", options.bind), reason: e.to_string() })?;
    let address = listener.local_addr().map_err(|e| ClusterError::Setup { what: "the scheduler's address".into(), reason: e.to_string() })?;
    // Ballista binds the address itself: the probe above only finds the port (0: any).
    drop(listener);
    let mut config = SchedulerConfig {
        bind_host: address.ip().to_string(),
        external_host: address.ip().to_string(),
        bind_port: address.port(),
        executor_timeout_seconds: options.executor_timeout_secs,
        no_executors_grace_period_seconds: options.executor_timeout_secs,
        expire_dead_executor_interval_seconds: (options.executor_timeout_secs / 4).max(1),
        ..SchedulerConfig::default()
    }
    .with_override_config_producer(Arc::new(session_config))
    .with_override_session_builder(Arc::new(session_state));
    config.override_logical_codec = Some(Arc::new(ReviewCodec::default()));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(setup("the scheduler's cluster state"))?;
    ready(address);
    start_server(cluster, address, Arc::new(config)).await.map_err(setup("the scheduler"))
}

/// Runs an executor until the process ends. `ready` is called once the scheduler has
/// answered its first heartbeat.
pub async fn run_executor(options: ExecutorOptions, ready: impl FnOnce() + Send + 'static) -> Result<(), ClusterError> {
    let (scheduler_host, scheduler_port) = match options.scheduler.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| ClusterError::BadUrl { url: options.scheduler.clone(), reason: "the port is not a number".into() })?),
        None => (options.scheduler.clone(), crate::DEFAULT_SCHEDULER_PORT),
    };
    std::fs::create_dir_all(&options.work_dir).map_err(|e| ClusterError::Setup { what: format!("the work directory {}", options.work_dir.display()), reason: e.to_string() })?;
    let mut functions = BallistaFunctionRegistry::default();
    let part = loggvakt_analyse::PartFunction::udf();
    functions.scalar_functions.insert(part.name().to_owned(), Arc::new(part));
    let config = ExecutorProcessConfig {
        bind_host: options.host.clone(),
        external_host: Some(options.host.clone()),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        vcores: options.concurrent_tasks,
        work_dir: Some(options.work_dir.display().to_string()),
        executor_heartbeat_interval_seconds: options.heartbeat_secs,
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(Arc::new(|_config: &datafusion::prelude::SessionConfig| runtime_env())),
        override_function_registry: Some(Arc::new(functions)),
        override_logical_codec: Some(Arc::new(ReviewCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    let health = config.health.clone();
    tokio::spawn(async move {
        while !health.is_ready() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        ready();
    });
    start_executor_process(Arc::new(config)).await.map_err(setup("the executor"))
}
