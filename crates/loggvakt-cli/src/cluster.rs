//! `loggvakt cluster scheduler|executor`: the processes of a Ballista cluster that
//! `loggvakt detect --cluster` runs its queries on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Run a scheduler: it plans each query of a review and hands its tasks to the executors.
    #[command(after_long_help = "Example:\n  \
loggvakt cluster scheduler --bind 10.0.0.5:50050\n\n\
Reviews connect with 'loggvakt detect --cluster df://10.0.0.5:50050'. It prints one line when it listens: \
'scheduler listening on ADDRESS'. deploy/ has systemd units and a compose file for 1 scheduler and N executors.")]
    Scheduler(SchedulerArgs),
    /// Run an executor: it registers with a scheduler and runs the tasks it is given.
    #[command(after_long_help = "Example:\n  \
AWS_ENDPOINT_URL=https://s3.example.no AWS_REGION=eu-north-1 AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \\\n    \
loggvakt cluster executor --scheduler 10.0.0.5:50050 --host 10.0.0.6 --work-dir /var/lib/loggvakt-executor\n\n\
An executor reads the store where the review says: a published copy in a bucket (detect --read-from s3://…), \
configured from this process's AWS_* environment, or the store's directory when it is mounted at the same path. \
The views a review computes are written to its --scratch directory, which every executor must reach at the \
same path. It prints 'executor ready' once the scheduler has answered it.")]
    Executor(ExecutorArgs),
}

#[derive(clap::Args)]
pub struct SchedulerArgs {
    /// Address to listen on (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: SocketAddr,
    /// Seconds without a heartbeat after which an executor is taken as lost and its tasks
    /// run again elsewhere.
    #[arg(long, default_value_t = 20)]
    pub executor_timeout: u64,
}

#[derive(clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler, host:port.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// The address this executor listens on and is reached at by the scheduler and the
    /// other executors.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Arrow Flight port: shuffle data and results are fetched from it.
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// gRPC port: tasks arrive on it.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Where shuffle files are written while their query runs.
    #[arg(long)]
    pub work_dir: PathBuf,
    /// Tasks at once (default: the machine's cores).
    #[arg(long)]
    pub concurrent_tasks: Option<usize>,
    /// Seconds between heartbeats to the scheduler (keep it well under the scheduler's
    /// --executor-timeout).
    #[arg(long, default_value_t = 5)]
    pub heartbeat: u64,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Ballista's own binaries give the scheduler's threads 32 MiB stacks: planning a deep
    // query recurses.
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(32 << 20).build().context("starting the runtime")
}

pub fn run(command: &ClusterCommand) -> anyhow::Result<ExitCode> {
    // Ballista says what it schedules and runs through `log`: warnings by default,
    // everything with LOGGVAKT_CLUSTER_LOG=info (or debug).
    let level = std::env::var("LOGGVAKT_CLUSTER_LOG").ok().and_then(|l| l.parse().ok()).unwrap_or(log::LevelFilter::Warn);
    crate::logging::install_log_records(level);
    match command {
        ClusterCommand::Scheduler(args) => {
            let options = loggvakt_cluster::SchedulerOptions { bind: args.bind, executor_timeout_secs: args.executor_timeout };
            runtime()?
                .block_on(loggvakt_cluster::run_scheduler(options, |address| println!("scheduler listening on {address} (reviews connect with --cluster df://{address})")))?;
        }
        ClusterCommand::Executor(args) => {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let options = loggvakt_cluster::ExecutorOptions {
                scheduler: args.scheduler.clone(),
                host: args.host.clone(),
                port: args.port,
                grpc_port: args.grpc_port,
                work_dir: args.work_dir.clone(),
                concurrent_tasks: args.concurrent_tasks.unwrap_or(cores),
                heartbeat_secs: args.heartbeat.max(1),
            };
            let scheduler = args.scheduler.clone();
            runtime()?.block_on(loggvakt_cluster::run_executor(options, move || println!("executor ready: registered with the scheduler at {scheduler}")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
