//! Runs the queries and detectors on DataFusion: registers the journal's Parquet segments
//! (Hive partitions `tenant`, `date`) and the current context snapshot, builds the views of
//! `queries/`, runs every detector, and collects what the review queues are made from.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, DurationMicrosecondArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::detector::{Detector, SqlFile};
use crate::kept::{self, Kept};
use crate::parts::{self, PartFunction, PartSpec, Parted, Splits};
use crate::pinned::ReadFrom;
use crate::pool::PeakPool;
use crate::settings::Settings;
use crate::AnalyseError;

/// The review period: whole UTC days, `to` included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
}

impl Period {
    /// The values `${from}`, `${to}` (exclusive instant), `${from_date}` and `${to_date}`
    /// (inclusive partition dates) that SQL files may use, and the lookback before the
    /// period: `${history_from}` and `${history_from_date}`, `lookback_days` earlier.
    pub fn values(&self, lookback_days: i64) -> BTreeMap<String, String> {
        let end = self.to + chrono::Duration::days(1);
        let history = self.from - chrono::Duration::days(lookback_days.max(0));
        BTreeMap::from([
            ("from".to_owned(), format!("{}T00:00:00Z", self.from)),
            ("to".to_owned(), format!("{end}T00:00:00Z")),
            ("from_date".to_owned(), self.from.to_string()),
            ("to_date".to_owned(), self.to.to_string()),
            ("history_from".to_owned(), format!("{history}T00:00:00Z")),
            ("history_from_date".to_owned(), history.to_string()),
        ])
    }
}

/// One access, as the views describe it (only flagged and sampled ones are collected).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccessRow {
    pub seq: i64,
    pub event_id: String,
    pub source_system: String,
    /// UTC microseconds.
    pub occurred_at: i64,
    pub tenant: String,
    pub accessor_id: Option<String>,
    pub accessor_hpr: Option<String>,
    pub accessor_name: Option<String>,
    pub unit_id: Option<String>,
    pub unit_name: Option<String>,
    pub role_code: Option<String>,
    pub patient_id: Option<String>,
    pub action: String,
    pub basis: String,
    pub purpose_code: Option<String>,
    pub explained: bool,
    pub explained_by: Option<String>,
}

/// One detector hit: which access, how strong, and the evidence columns by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub detector: usize,
    pub seq: i64,
    pub strength: f64,
    pub evidence: BTreeMap<String, String>,
}

/// Accesses and how many of them care evidence explains, per organisation and unit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Coverage {
    pub tenant: String,
    pub unit_id: Option<String>,
    pub unit_name: Option<String>,
    pub accesses: u64,
    pub explained: u64,
}

/// How many accesses one kind of explanation accounts for in one organisation: `by` is
/// the link (participant, unit, team, service), `kind` the evidence behind it (encounter,
/// episode_of_care, appointment, service_request, …).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub tenant: String,
    pub by: String,
    pub kind: Option<String>,
    pub accesses: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Daily {
    pub tenant: String,
    pub date: String,
    pub accesses: u64,
    pub explained: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DetectorRun {
    pub id: String,
    pub flags: usize,
    pub millis: u128,
    /// The most the memory pool held at once during it (with a memory limit).
    pub peak_memory: Option<usize>,
}

/// Everything one analysis produced, before ranking.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub period: Period,
    pub detectors: Vec<Detector>,
    pub runs: Vec<DetectorRun>,
    pub flags: Vec<Flag>,
    /// Flagged and sampled accesses by seq.
    pub accesses: HashMap<i64, AccessRow>,
    /// For each flagged patient, the organisations with care evidence for them.
    pub care_orgs: HashMap<String, Vec<String>>,
    pub coverage: Vec<Coverage>,
    pub explanations: Vec<Explanation>,
    pub daily: Vec<Daily>,
    /// Unflagged accesses drawn for quality control, by tenant.
    pub samples: BTreeMap<String, Vec<i64>>,
    /// Event ids of accesses to a patient that nothing explained, by tenant.
    pub unexplained: BTreeMap<String, Vec<String>>,
    /// Accesses to patients known only by an identifier from outside the Norwegian
    /// registers, by tenant: kept out of the detectors, which cannot judge them.
    pub unidentified: BTreeMap<String, u64>,
    pub context_version: u32,
    pub total_accesses: u64,
    /// Time spent outside the detectors: building views, collecting rows and figures.
    pub phases: Vec<DetectorRun>,
    /// Legal entities' names from the context, by orgnr.
    pub org_names: BTreeMap<String, String>,
}

/// What the engine is doing, for a progress display.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    Preparing(&'a str),
    Detector { index: usize, of: usize, id: &'a str },
    DetectorDone { id: &'a str, flags: usize },
}

/// Where and what to analyse.
pub struct Job<'a> {
    pub store: &'a Path,
    pub period: Period,
    /// Only this organisation's accesses (the tenant); `None` for all.
    pub org: Option<&'a str>,
    pub detectors: Vec<Detector>,
    pub queries: Vec<SqlFile>,
    /// `param=value` or `detector.param=value` overrides.
    pub params: BTreeMap<String, String>,
    pub settings: &'a Settings,
    /// Read the records up to this sequence number only: the size of the signed checkpoint
    /// the review rests on, so a seal that lands while it runs changes nothing, and a rerun
    /// from the same checkpoint reads the same events. `None`: every sealed segment.
    pub through_seq: Option<u64>,
    /// The context snapshot to read (`v000003`); `None`: the current one.
    pub context_snapshot: Option<&'a str>,
    /// Bytes the queries may hold at once; joins, sorts and aggregations past it spill to
    /// disk, and a query that cannot fit fails naming its detector or view. `None`: no limit.
    /// On a cluster, the executors' own limits apply; this still sizes the parts.
    pub memory_limit: Option<usize>,
    /// Read the events and context from a published copy of the store (`s3://bucket/prefix`,
    /// `docs/format.md` §7a) instead of the store directory: the same files, by the same
    /// names. The files pinned still come from the store's own epoch index.
    pub read_from: Option<&'a str>,
    /// The session to run the queries on instead of one in this process: a Ballista
    /// cluster's (`loggvakt_cluster::connect`), whose scheduler plans them and whose
    /// executors run them. The same SQL, views and detectors either way.
    pub session: Option<datafusion::execution::SessionState>,
    /// Where the views computed while the analysis runs are kept (a temporary directory
    /// under it, deleted at the end); `None`: the system's temporary directory. A cluster's
    /// executors write and read them, so on a cluster it is a path they all reach.
    pub scratch: Option<&'a Path>,
}

/// Runs the analysis (DataFusion on a runtime of its own; blocking).
/// Parameter values are written into SQL: only plain literals (a number or a word of
/// letters, digits and `_ . : + -`) are accepted. `analyse` checks them itself, so no caller
/// (the CLI, a web view) can pass SQL through them; callers may check early.
pub fn check_params(params: &BTreeMap<String, String>) -> Result<(), AnalyseError> {
    match params.iter().find(|(_, v)| v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_.:+-".contains(c))) {
        Some((name, value)) => Err(AnalyseError::Parameter { name: name.clone(), value: value.clone() }),
        None => Ok(()),
    }
}

pub fn analyse(job: Job<'_>, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Analysis, AnalyseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| AnalyseError::io(job.store, e))?;
    runtime.block_on(analyse_async(job, progress))
}

pub(crate) fn df(context: &str, e: datafusion::error::DataFusionError) -> AnalyseError {
    if matches!(e.find_root(), datafusion::error::DataFusionError::ResourcesExhausted(_)) {
        // The limit is filled in by `analyse_async`, which knows it.
        return AnalyseError::MemoryLimit { context: context.to_owned(), limit: 0, reason: e.find_root().to_string() };
    }
    AnalyseError::Query { context: context.to_owned(), reason: e.to_string() }
}

/// Registers the store's segments as `events`, and the context snapshot's tables (the
/// named one, or the current one). Pinned to a checkpoint (`through_seq`), `events` is
/// exactly the files the epoch index lists for the epochs it covers, in the partitions of
/// `dates` (first, last); otherwise every sealed segment under `data/`. Files are read from
/// where `read_from` says; a published copy is read only pinned to a checkpoint.
pub async fn register_store(
    ctx: &SessionContext,
    store: &Path,
    read_from: ReadFrom<'_>,
    through_seq: Option<u64>,
    dates: (&str, &str),
    snapshot: Option<&str>,
) -> Result<u32, AnalyseError> {
    let data = store.join("data");
    if !data.is_dir() {
        return Err(AnalyseError::NoEvents(store.to_owned()));
    }
    let options = ParquetReadOptions { table_partition_cols: vec![("tenant".into(), DataType::Utf8), ("date".into(), DataType::Utf8)], ..Default::default() };
    let url = format!("{}/", data.canonicalize().map_err(|e| AnalyseError::io(&data, e))?.display());
    match (through_seq, read_from) {
        (None, ReadFrom::Store) => ctx.register_parquet("events", &url, options).await.map_err(|e| df("registering the journal's segments", e))?,
        (None, ReadFrom::Bucket { .. }) => {
            return Err(AnalyseError::Query { context: "reading a published copy".into(), reason: "a published copy is read pinned to a checkpoint only".into() })
        }
        (Some(last), read_from) => {
            let pinned = crate::pinned::PinnedSegments::open(store, read_from, last, dates.0, dates.1)?;
            ctx.register_table("events", Arc::new(pinned)).map_err(|e| df("pinning the events to the checkpoint", e))?;
        }
    }
    let snapshot = match snapshot {
        Some(name) => loggvakt_context::named_snapshot(store, name)?,
        None => loggvakt_context::current_snapshot(store)?.ok_or_else(|| AnalyseError::NoContext(store.to_owned()))?,
    };
    let snapshot_in_store = snapshot
        .dir
        .strip_prefix(store)
        .map_err(|_| AnalyseError::Query { context: "the context snapshot".into(), reason: format!("{} is not inside the store {}", snapshot.dir.display(), store.display()) })?;
    for (table, _) in loggvakt_context::TABLES {
        let path = snapshot.dir.join(format!("{table}.parquet"));
        if !path.is_file() {
            return Err(AnalyseError::OldContext { dir: snapshot.dir.clone(), table });
        }
        let relative = snapshot_in_store.join(format!("{table}.parquet"));
        let (object_store, location) = read_from.locate(store, &relative.to_string_lossy())?;
        let url = format!("{}/{location}", object_store.trim_end_matches('/'));
        ctx.register_parquet(*table, &url, ParquetReadOptions::default()).await.map_err(|e| df(&format!("registering context table {table}"), e))?;
    }
    Ok(snapshot.version)
}

/// `frame` with the named text columns cast to `Dictionary(Int32, Utf8)`; the rest as they are.
fn dictionary_encoded(frame: datafusion::prelude::DataFrame, columns: &str) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    let wanted: Vec<&str> = columns.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    if wanted.is_empty() {
        return Ok(frame);
    }
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let exprs: Vec<datafusion::prelude::Expr> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = datafusion::prelude::ident(f.name());
            if wanted.contains(&f.name().as_str()) && matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
                datafusion::prelude::cast(column, dictionary.clone()).alias(f.name())
            } else {
                column
            }
        })
        .collect();
    frame.select(exprs)
}

/// What one step of the review took: time, and the pool's peak since the last step.
fn step(id: String, flags: usize, started: Instant, peak: &Option<Arc<PeakPool>>) -> DetectorRun {
    DetectorRun { id, flags, millis: started.elapsed().as_millis(), peak_memory: peak.as_ref().map(|p| p.take_peak()) }
}

/// Writes a view's rows to one Parquet file (LZ4: written and read back faster than the
/// default zstd, and these files live only as long as the analysis); the rows written.
pub(crate) async fn write_view(frame: datafusion::prelude::DataFrame, path: &Path) -> datafusion::error::Result<usize> {
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("lz4_raw".into());
    for field in frame.schema().fields().iter().filter(|f| !parts::worth_a_dictionary(f, &[])) {
        options.column_specific_options.insert(field.name().clone(), datafusion::config::ParquetColumnOptions { dictionary_enabled: Some(false), ..Default::default() });
    }
    let written = frame.write_parquet(&path.display().to_string(), DataFrameWriteOptions::new().with_single_file_output(true), Some(options)).await?;
    let count = written.first().and_then(|b| b.column_by_name("count")).and_then(|c| c.as_any().downcast_ref::<datafusion::arrow::array::UInt64Array>()).map_or(0, |c| c.value(0));
    Ok(count as usize)
}

/// The views the engine itself reads after the detectors (rows of flagged accesses,
/// coverage, the quality sample, explanations by kind, days).
const READ_AFTER_DETECTION: &[&str] = &["access_explained", "access_details"];

/// Whether `sql` names `table` as a whole word (not as the start of `table_other`),
/// outside `--` comments.
fn mentions_table(sql: &str, table: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    sql.lines().map(|line| line.split("--").next().unwrap_or("")).any(|code| {
        code.match_indices(table).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = code[at + table.len()..].chars().next();
            !before.is_some_and(is_word) && !after.is_some_and(is_word)
        })
    })
}

async fn collect(ctx: &SessionContext, sql: &str, context: &str) -> Result<Vec<RecordBatch>, AnalyseError> {
    ctx.sql(sql).await.map_err(|e| df(context, e))?.collect().await.map_err(|e| df(context, e))
}

/// Runs a query and calls `each` with every row of its result.
async fn each_row(ctx: &SessionContext, sql: &str, context: &str, mut each: impl FnMut(&Rows<'_>, usize)) -> Result<(), AnalyseError> {
    for batch in collect(ctx, sql, context).await? {
        let options = FormatOptions::default();
        let rows = Rows::new(&batch, &options)?;
        for r in 0..batch.num_rows() {
            each(&rows, r);
        }
    }
    Ok(())
}

/// Per-organisation settings as a table, so SQL can join each access to its own windows.
fn settings_table(settings: &Settings, tenants: &[String]) -> Result<MemTable, AnalyseError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("orgnr", DataType::Utf8, false),
        Field::new("window_before_days", DataType::Int64, false),
        Field::new("window_after_days", DataType::Int64, false),
        // Durations, not calendar intervals: the timestamps are UTC, where a day is 24 hours,
        // and arrow adds an interval to a timestamp with a time zone by converting each value
        // to local time and back (chrono-tz), ~7 % of `access_links` on a region's week
        // (perf). DuckDB's script keeps INTERVAL; the SQL is the same.
        Field::new("window_before", DataType::Duration(TimeUnit::Microsecond), false),
        Field::new("window_after", DataType::Duration(TimeUnit::Microsecond), false),
    ]));
    const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
    let days = |d: i64| d.clamp(0, i64::MAX / MICROS_PER_DAY) * MICROS_PER_DAY;
    let resolved: Vec<_> = tenants.iter().map(|t| settings.for_org(t)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(tenants.iter())),
        Arc::new(Int64Array::from_iter_values(resolved.iter().map(|s| s.window_before_days))),
        Arc::new(Int64Array::from_iter_values(resolved.iter().map(|s| s.window_after_days))),
        Arc::new(DurationMicrosecondArray::from_iter_values(resolved.iter().map(|s| days(s.window_before_days)))),
        Arc::new(DurationMicrosecondArray::from_iter_values(resolved.iter().map(|s| days(s.window_after_days)))),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| AnalyseError::Query { context: "settings table".into(), reason: e.to_string() })?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| df("settings table", e))
}

/// Column access by name over collected batches, text for anything displayable.
struct Rows<'a> {
    batch: &'a RecordBatch,
    formatters: Vec<(String, ArrayFormatter<'a>)>,
}

impl<'a> Rows<'a> {
    fn new(batch: &'a RecordBatch, options: &'a FormatOptions<'a>) -> Result<Self, AnalyseError> {
        let mut formatters = Vec::new();
        for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            let f = ArrayFormatter::try_new(column.as_ref(), options).map_err(|e| AnalyseError::Query { context: "reading results".into(), reason: e.to_string() })?;
            formatters.push((field.name().clone(), f));
        }
        Ok(Rows { batch, formatters })
    }
    fn text(&self, name: &str, row: usize) -> Option<String> {
        let column = self.batch.column_by_name(name)?;
        if column.is_null(row) {
            return None;
        }
        self.formatters.iter().find(|(n, _)| n == name).map(|(_, f)| f.value(row).to_string())
    }
    fn int(&self, name: &str, row: usize) -> Option<i64> {
        let column = self.batch.column_by_name(name)?;
        let ints = column.as_any().downcast_ref::<Int64Array>()?;
        (!ints.is_null(row)).then(|| ints.value(row))
    }
    fn float(&self, name: &str, row: usize) -> Option<f64> {
        let column = self.batch.column_by_name(name)?;
        if let Some(f) = column.as_any().downcast_ref::<Float64Array>() {
            return (!f.is_null(row)).then(|| f.value(row));
        }
        self.int(name, row).map(|i| i as f64)
    }
    fn micros(&self, name: &str, row: usize) -> Option<i64> {
        let column = self.batch.column_by_name(name)?;
        let t = column.as_any().downcast_ref::<TimestampMicrosecondArray>()?;
        (!t.is_null(row)).then(|| t.value(row))
    }
    fn flag(&self, name: &str, row: usize) -> bool {
        self.text(name, row).is_some_and(|t| t == "true")
    }
}

fn access_row(rows: &Rows<'_>, row: usize) -> Option<AccessRow> {
    Some(AccessRow {
        seq: rows.int("seq", row)?,
        event_id: rows.text("event_id", row)?,
        source_system: rows.text("source_system", row).unwrap_or_default(),
        occurred_at: rows.micros("occurred_at", row)?,
        tenant: rows.text("tenant", row)?,
        accessor_id: rows.text("accessor_id", row),
        accessor_hpr: rows.text("accessor_hpr", row),
        accessor_name: rows.text("accessor_name", row),
        unit_id: rows.text("unit_id", row),
        unit_name: rows.text("unit_name", row),
        role_code: rows.text("role_code", row),
        patient_id: rows.text("patient_id", row),
        action: rows.text("action", row).unwrap_or_default(),
        basis: rows.text("basis", row).unwrap_or_default(),
        purpose_code: rows.text("purpose_code", row),
        explained: rows.flag("explained", row),
        explained_by: rows.text("explained_by", row),
    })
}

const FLAG_COLUMNS: &[&str] = &["seq", "strength"];

/// An access as reports show it: the detectors' columns and the details.
/// The unit's name is the event's, else the context's (an event without a location agent
/// takes its unit from the accessor's role, and names it nowhere): join `UNIT_NAMES`.
const ROW_COLUMNS: &str = "a.seq, a.occurred_at, a.tenant, a.accessor_id, a.accessor_hpr, a.unit_id, a.role_code, a.patient_id, \
    a.action, a.basis, a.explained, a.explained_by, d.event_id, d.source_system, d.accessor_name, COALESCE(d.unit_name, un.name) AS unit_name, d.purpose_code";
const UNIT_NAMES: &str = "LEFT JOIN (SELECT resh, MIN(name) AS name FROM organization WHERE resh IS NOT NULL GROUP BY resh) un ON un.resh = a.unit_id";

/// [`analyse`] for a caller that runs on an async runtime already (a web view): no runtime
/// of its own, and no thread blocked.
pub async fn analyse_async(job: Job<'_>, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Analysis, AnalyseError> {
    let limit = job.memory_limit.unwrap_or(0);
    analyse_in_session(job, progress).await.map_err(|e| match e {
        AnalyseError::MemoryLimit { context, reason, .. } => AnalyseError::MemoryLimit { context, limit, reason },
        other => other,
    })
}

async fn analyse_in_session(mut job: Job<'_>, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Analysis, AnalyseError> {
    check_params(&job.params)?;
    let config = SessionConfig::new().with_information_schema(true);
    let cluster = job.session.is_some();
    let (ctx, peak) = match (job.session.take(), job.memory_limit) {
        (Some(state), _) => (SessionContext::new_with_state(state), None),
        (None, None) => (SessionContext::new_with_config(config), None),
        (None, Some(bytes)) => {
            // Fair shares between the spilling operators of a query, the five largest
            // consumers named when a query cannot fit, and each step's peak reported.
            let pool = TrackConsumersPool::new(FairSpillPool::new(bytes), std::num::NonZeroUsize::MIN.saturating_add(4));
            let peak = Arc::new(PeakPool::new(Arc::new(pool)));
            let runtime = RuntimeEnvBuilder::new().with_memory_pool(peak.clone()).build_arc().map_err(|e| df("the memory limit", e))?;
            (SessionContext::new_with_config_rt(config, runtime), Some(peak))
        }
    };
    progress(Progress::Preparing("registering the journal and the context"));
    let mut common = job.period.values(job.settings.lookback_days);
    let dates = (common.get("history_from_date").cloned().unwrap_or_default(), common.get("to_date").cloned().unwrap_or_default());
    let read_from = match job.read_from {
        None => ReadFrom::Store,
        Some(url) => {
            let (bucket, prefix) = loggvakt_storage::split_bucket_url(url).map_err(|e| AnalyseError::Query { context: "--read-from".into(), reason: e.to_string() })?;
            // This process plans and lists the files; a cluster's processes have stores of
            // their own, configured from their own environment.
            let client = loggvakt_storage::s3_object_store(bucket, &loggvakt_storage::S3Settings::default())
                .map_err(|reason| AnalyseError::Query { context: format!("opening {url}"), reason })?;
            let base = url::Url::parse(&format!("s3://{bucket}")).map_err(|e| AnalyseError::Query { context: format!("opening {url}"), reason: e.to_string() })?;
            ctx.register_object_store(&base, client);
            ReadFrom::Bucket { bucket, prefix }
        }
    };
    let context_version = register_store(&ctx, job.store, read_from, job.through_seq, (&dates.0, &dates.1), job.context_snapshot).await?;

    common.insert(
        "org_filter".into(),
        match job.org {
            Some(org) => format!("e.tenant = '{}'", org.replace('\'', "''")),
            None => "TRUE".into(),
        },
    );
    let tenants_sql = format!("SELECT DISTINCT tenant FROM events WHERE date >= '{}' AND date <= '{}' ORDER BY tenant", job.period.from, job.period.to);
    let mut tenants = Vec::new();
    each_row(&ctx, &tenants_sql, "listing organisations", |rows, r| tenants.extend(rows.text("tenant", r))).await?;
    ctx.register_table("org_settings", Arc::new(settings_table(job.settings, &tenants)?)).map_err(|e| df("org_settings", e))?;

    let mut phases = Vec::new();
    // Views marked `materialize: true` are computed once and kept on disk as Parquet, not
    // in memory: every detector reads `access_explained`, and at 25 M accesses the views
    // held in memory took 3.9 GB (`access`) and more, beside the joins that need the pool.
    // The directory goes when the analysis ends.
    let scratch = job.scratch.map_or_else(std::env::temp_dir, Path::to_owned);
    let views_dir = tempfile::Builder::new().prefix("loggvakt-views-").tempdir_in(&scratch).map_err(|e| AnalyseError::io(&scratch, e))?;
    let mut kept_rows: HashMap<String, usize> = HashMap::new();
    let mut splits = Splits::default();
    ctx.register_udf(PartFunction::udf());
    for query in &job.queries {
        let Some(view) = query.header.get("view") else { continue };
        progress(Progress::Preparing(view));
        let started = Instant::now();
        let sql = query.render(&job.params, &common)?;
        if query.header.get("materialize").map(String::as_str) == Some("true") {
            let dir = views_dir.path().join(view);
            std::fs::create_dir_all(&dir).map_err(|e| AnalyseError::io(&dir, e))?;
            // A view with `parts:` is computed a share of its inputs at a time, as many
            // shares as the memory limit (or the settings) ask for; one without a limit.
            let parted = Parted::plan(&ctx, query, |v| kept_rows.get(v).copied(), job.memory_limit, job.settings.max_rows_per_part, &mut splits, views_dir.path()).await?;
            let parts = parted.as_ref().map_or(1, |p| p.parts);
            let mut rows = 0;
            for part in 0..parts {
                if let Some(parted) = &parted {
                    progress(Progress::Preparing(&format!("{view} (part {} of {parts})", part + 1)));
                    parted.select(&ctx, part).await.map_err(|e| df(&query.origin, e))?;
                }
                let (frame, kept) = kept::frame(&ctx, query, &sql, &views_dir.path().join(format!("keep-{view}"))).await?;
                // Columns the header names under `dictionary:` (codes with few distinct
                // values) are kept dictionary-encoded. Not grouping keys: encoding tenant,
                // unit and role made btg_frequency 30 times slower.
                let frame = dictionary_encoded(frame, query.header.get("dictionary").map(String::as_str).unwrap_or("")).map_err(|e| df(&query.origin, e))?;
                rows += write_view(frame, &dir.join(format!("part-{part:04}.parquet"))).await.map_err(|e| df(&query.origin, e))?;
                kept.release(&ctx)?;
            }
            if let Some(parted) = parted {
                parted.restore(&ctx).map_err(|e| df(&query.origin, e))?;
            }
            ctx.register_parquet(view.as_str(), &format!("{}/", dir.display()), ParquetReadOptions::default()).await.map_err(|e| df(&query.origin, e))?;
            kept_rows.insert(view.clone(), rows);
            let id = if parts > 1 { format!("view {view} in {parts} parts") } else { format!("view {view}") };
            phases.push(step(id, 0, started, &peak));
        } else {
            if !Kept::names_of(query).is_empty() {
                return Err(AnalyseError::Definition {
                    origin: query.origin.clone(),
                    line: 0,
                    reason: "keep: only a view with 'materialize: true' (or a detector) can keep its CTEs".into(),
                });
            }
            let frame = ctx.sql(&sql).await.map_err(|e| df(&query.origin, e))?;
            ctx.register_table(view.as_str(), frame.into_view()).map_err(|e| df(&query.origin, e))?;
            phases.push(step(format!("view {view}"), 0, started, &peak));
        }
    }
    // A view kept only to build the next ones is let go (and its files deleted) before the
    // detectors run: `access` (the period's accesses) is read by `access_links` alone.
    for (i, query) in job.queries.iter().enumerate() {
        let Some(view) = query.header.get("view").filter(|_| query.header.get("materialize").map(String::as_str) == Some("true")) else { continue };
        let read_later = job.queries[i + 1..].iter().any(|q| mentions_table(&q.body, view))
            || job.detectors.iter().any(|d| mentions_table(&d.file.body, view))
            || READ_AFTER_DETECTION.contains(&view.as_str());
        if !read_later {
            ctx.deregister_table(view.as_str()).map_err(|e| df(&query.origin, e))?;
            let dir = views_dir.path().join(view);
            std::fs::remove_dir_all(&dir).map_err(|e| AnalyseError::io(&dir, e))?;
        }
    }

    // On a cluster, a task that ran again after an executor was lost has been seen to give
    // an access twice (a quality sample with every access doubled). The views the queues
    // are built from hold one row per access: checked, so such a run stops with an error
    // instead of writing queues from doubled rows.
    if cluster {
        for view in READ_AFTER_DETECTION {
            let sql = format!("SELECT COUNT(*) - COUNT(DISTINCT seq) AS repeated FROM {view}");
            let mut repeated = 0;
            each_row(&ctx, &sql, view, |rows, r| repeated = rows.int("repeated", r).unwrap_or(0)).await?;
            if repeated != 0 {
                return Err(AnalyseError::Query {
                    context: (*view).to_owned(),
                    reason: format!(
                        "{repeated} accesses came back twice from the cluster (a task ran again after an executor was lost); no queue was written: run the review again"
                    ),
                });
            }
        }
    }
    let parted_by_detectors: HashSet<String> = job.detectors.iter().filter_map(|d| PartSpec::of(&d.file).ok().flatten()).flat_map(|spec| spec.inputs).collect();
    splits.delete_unless(|input| parted_by_detectors.contains(input))?;
    let mut flags = Vec::new();
    let mut runs = Vec::new();
    for (index, detector) in job.detectors.iter().enumerate() {
        progress(Progress::Detector { index, of: job.detectors.len(), id: &detector.id });
        let started = Instant::now();
        let mut overrides = BTreeMap::new();
        for (key, value) in &job.params {
            match key.split_once('.') {
                Some((id, name)) if id == detector.id => {
                    overrides.insert(name.to_owned(), value.clone());
                }
                None => {
                    overrides.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        let sql = detector.file.render(&overrides, &common)?;
        // A detector with `parts:` runs once per share of the patients (see parts.rs); its
        // flags are the union.
        let parted = Parted::plan(&ctx, &detector.file, |v| kept_rows.get(v).copied(), job.memory_limit, job.settings.max_rows_per_part, &mut splits, views_dir.path()).await?;
        let mut batches = Vec::new();
        for part in 0..parted.as_ref().map_or(1, |p| p.parts) {
            if let Some(parted) = &parted {
                parted.select(&ctx, part).await.map_err(|e| df(&detector.file.origin, e))?;
            }
            let (frame, kept) = kept::frame(&ctx, &detector.file, &sql, &views_dir.path().join(format!("keep-{}", detector.id))).await?;
            batches.extend(frame.collect().await.map_err(|e| df(&detector.file.origin, e))?);
            kept.release(&ctx)?;
        }
        if let Some(parted) = parted {
            parted.restore(&ctx).map_err(|e| df(&detector.file.origin, e))?;
        }
        let mut count = 0;
        for batch in &batches {
            if batch.column_by_name("seq").is_none() || batch.column_by_name("strength").is_none() {
                return Err(AnalyseError::Query { context: detector.file.origin.clone(), reason: "a detector must return the columns seq and strength".into() });
            }
            let options = FormatOptions::default();
            let rows = Rows::new(batch, &options)?;
            for row in 0..batch.num_rows() {
                let (Some(seq), Some(strength)) = (rows.int("seq", row), rows.float("strength", row)) else { continue };
                if strength <= 0.0 {
                    continue;
                }
                let evidence = rows
                    .formatters
                    .iter()
                    .filter(|(name, _)| !FLAG_COLUMNS.contains(&name.as_str()))
                    .filter_map(|(name, _)| rows.text(name, row).map(|v| (name.clone(), v)))
                    .collect();
                flags.push(Flag { detector: index, seq, strength: strength.min(1.0), evidence });
                count += 1;
            }
        }
        progress(Progress::DetectorDone { id: &detector.id, flags: count });
        runs.push(step(detector.id.clone(), count, started, &peak));
    }
    // In detector and access order, whatever order the engine's threads and parts gave
    // them in: two runs on the same basis write the same flags.csv, line for line.
    flags.sort_by_key(|f| (f.detector, f.seq));

    progress(Progress::Preparing("collecting flagged accesses and coverage"));
    let flagged: HashSet<i64> = flags.iter().map(|f| f.seq).collect();
    let mut accesses = HashMap::new();
    let seq_schema = Arc::new(Schema::new(vec![Field::new("seq", DataType::Int64, false)]));
    let seq_batch = RecordBatch::try_new(seq_schema.clone(), vec![Arc::new(Int64Array::from_iter_values(flagged.iter().copied()))])
        .map_err(|e| AnalyseError::Query { context: "flagged".into(), reason: e.to_string() })?;
    ctx.register_table("flagged", Arc::new(MemTable::try_new(seq_schema, vec![vec![seq_batch]]).map_err(|e| df("flagged", e))?)).map_err(|e| df("flagged", e))?;
    let row_sql = format!("SELECT {ROW_COLUMNS} FROM access_explained a JOIN flagged f ON f.seq = a.seq JOIN access_details d ON d.seq = a.seq {UNIT_NAMES}");
    let started = Instant::now();
    each_row(&ctx, &row_sql, "collecting flagged accesses", |rows, r| {
        if let Some(a) = access_row(rows, r) {
            accesses.insert(a.seq, a);
        }
    })
    .await?;
    phases.push(step("collecting flagged accesses".into(), 0, started, &peak));
    let mut coverage = Vec::new();
    let mut total_accesses = 0;
    let coverage_sql = "SELECT c.*, u.name AS unit_name FROM (SELECT tenant, unit_id, COUNT(*) AS accesses, \
        SUM(CASE WHEN explained THEN 1 ELSE 0 END) AS explained FROM access_explained WHERE patient_id IS NOT NULL \
        GROUP BY tenant, unit_id) c LEFT JOIN (SELECT resh, MIN(name) AS name FROM organization WHERE resh IS NOT NULL GROUP BY resh) u \
        ON u.resh = c.unit_id ORDER BY c.tenant, c.unit_id";
    let started = Instant::now();
    each_row(&ctx, coverage_sql, "explained share", |rows, r| {
        let c = Coverage {
            tenant: rows.text("tenant", r).unwrap_or_default(),
            unit_id: rows.text("unit_id", r),
            unit_name: rows.text("unit_name", r),
            accesses: rows.int("accesses", r).unwrap_or(0) as u64,
            explained: rows.int("explained", r).unwrap_or(0) as u64,
        };
        total_accesses += c.accesses;
        coverage.push(c);
    })
    .await?;
    phases.push(step("explained share".into(), 0, started, &peak));
    // Quality control: a pseudo-random (but repeatable) draw of unflagged accesses.
    let mut samples: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    // Each organisation's draw is taken from a hash bucket sized for it (about 20 times the
    // sample), so the ranking sorts a few rows rather than every access.
    let mut per_tenant: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &coverage {
        *per_tenant.entry(c.tenant.as_str()).or_default() += c.accesses;
    }
    // A period without accesses draws from nothing (and a CASE needs a WHEN).
    let bucket = if per_tenant.is_empty() {
        "1000003".to_owned()
    } else {
        let mut bucket = String::from("CASE a.tenant");
        for (tenant, accesses) in &per_tenant {
            let wanted = 20 * job.settings.for_org(tenant).qc_sample as u64 + 20;
            let limit = (1_000_003u64 * wanted / (*accesses).max(1)).min(1_000_003);
            let _ = write!(bucket, " WHEN '{}' THEN {limit}", tenant.replace('\'', "''"));
        }
        bucket.push_str(" ELSE 1000003 END");
        bucket
    };
    let sample_sql = format!(
        "SELECT a.*, ROW_NUMBER() OVER (PARTITION BY a.tenant ORDER BY (a.seq * 2654435761) % 1000003) AS draw \
        FROM access_explained a LEFT JOIN flagged f ON f.seq = a.seq WHERE f.seq IS NULL AND a.patient_id IS NOT NULL \
        AND (a.seq * 2654435761) % 1000003 < {bucket}"
    );
    let sample_sql = format!("SELECT {ROW_COLUMNS} FROM ({sample_sql}) a JOIN access_details d ON d.seq = a.seq {UNIT_NAMES} WHERE a.draw <= {}", job.settings.max_qc_sample());
    let started = Instant::now();
    each_row(&ctx, &sample_sql, "drawing the quality-control sample", |rows, r| {
        if let Some(a) = access_row(rows, r) {
            let take = job.settings.for_org(&a.tenant).qc_sample;
            let list = samples.entry(a.tenant.clone()).or_default();
            if list.len() < take {
                list.push(a.seq);
                accesses.insert(a.seq, a);
            }
        }
    })
    .await?;
    phases.push(step("drawing the quality-control sample".into(), 0, started, &peak));
    for list in samples.values_mut() {
        list.sort_unstable();
    }

    let mut explanations = Vec::new();
    let explanations_sql = "SELECT tenant, explained_by, explained_kind, COUNT(*) AS accesses FROM access_explained \
        WHERE patient_id IS NOT NULL AND explained GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let started = Instant::now();
    each_row(&ctx, explanations_sql, "explanations by kind", |rows, r| {
        explanations.push(Explanation {
            tenant: rows.text("tenant", r).unwrap_or_default(),
            by: rows.text("explained_by", r).unwrap_or_default(),
            kind: rows.text("explained_kind", r),
            accesses: rows.int("accesses", r).unwrap_or(0) as u64,
        });
    })
    .await?;
    phases.push(step("explanations by kind".into(), 0, started, &peak));

    let mut daily = Vec::new();
    let daily_sql = "SELECT tenant, CAST(CAST(occurred_at AS DATE) AS VARCHAR) AS day, COUNT(*) AS accesses, \
        SUM(CASE WHEN explained THEN 1 ELSE 0 END) AS explained FROM access_explained WHERE patient_id IS NOT NULL \
        GROUP BY 1, 2 ORDER BY 1, 2";
    let started = Instant::now();
    each_row(&ctx, daily_sql, "accesses per day", |rows, r| {
        daily.push(Daily {
            tenant: rows.text("tenant", r).unwrap_or_default(),
            date: rows.text("day", r).unwrap_or_default(),
            accesses: rows.int("accesses", r).unwrap_or(0) as u64,
            explained: rows.int("explained", r).unwrap_or(0) as u64,
        });
    })
    .await?;
    phases.push(step("accesses per day".into(), 0, started, &peak));
    let mut unidentified: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    each_row(&ctx, "SELECT tenant, COUNT(*) AS accesses FROM access WHERE patient_unidentified GROUP BY tenant", "patients without a Norwegian identifier", |rows, r| {
        if let Some(t) = rows.text("tenant", r) {
            unidentified.insert(t, rows.int("accesses", r).unwrap_or(0) as u64);
        }
    })
    .await?;
    phases.push(step("patients without a Norwegian identifier".into(), 0, started, &peak));
    let mut unexplained: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let unexplained_sql = "SELECT a.tenant, d.event_id FROM access_explained a JOIN access_details d ON d.seq = a.seq \
        WHERE a.patient_id IS NOT NULL AND NOT a.explained ORDER BY 1, 2";
    let started = Instant::now();
    each_row(&ctx, unexplained_sql, "unexplained accesses", |rows, r| {
        if let (Some(t), Some(id)) = (rows.text("tenant", r), rows.text("event_id", r)) {
            unexplained.entry(t).or_default().push(id);
        }
    })
    .await?;
    phases.push(step("unexplained accesses".into(), 0, started, &peak));
    // Where each flagged patient is in care, for the linked notices.
    let mut care_orgs: HashMap<String, Vec<String>> = HashMap::new();
    let care_sql = "SELECT DISTINCT c.patient_id, c.orgnr FROM care c JOIN (SELECT DISTINCT a.patient_id FROM access_explained a JOIN flagged f ON f.seq = a.seq) p \
        ON p.patient_id = c.patient_id WHERE c.orgnr IS NOT NULL ORDER BY 1, 2";
    let started = Instant::now();
    each_row(&ctx, care_sql, "patients' care organisations", |rows, r| {
        if let (Some(p), Some(o)) = (rows.text("patient_id", r), rows.text("orgnr", r)) {
            care_orgs.entry(p).or_default().push(o);
        }
    })
    .await?;
    phases.push(step("patients' care organisations".into(), 0, started, &peak));
    let mut org_names = BTreeMap::new();
    let names_sql = "SELECT orgnr, MIN(name) AS name FROM organization WHERE resh IS NULL AND orgnr IS NOT NULL AND name IS NOT NULL GROUP BY orgnr";
    let started = Instant::now();
    each_row(&ctx, names_sql, "organisation names", |rows, r| {
        if let (Some(o), Some(n)) = (rows.text("orgnr", r), rows.text("name", r)) {
            org_names.insert(o, n);
        }
    })
    .await?;
    phases.push(step("organisation names".into(), 0, started, &peak));
    Ok(Analysis {
        phases,
        org_names,
        period: job.period,
        detectors: job.detectors,
        runs,
        flags,
        accesses,
        care_orgs,
        coverage,
        explanations,
        daily,
        samples,
        unexplained,
        unidentified,
        context_version,
        total_accesses,
    })
}

#[cfg(test)]
mod param_tests {
    use super::*;

    #[test]
    fn a_table_is_mentioned_only_as_a_whole_word() {
        assert!(mentions_table("SELECT * FROM access a", "access"));
        assert!(mentions_table("FROM access\nJOIN x", "access"));
        assert!(!mentions_table("SELECT * FROM access_explained a JOIN access_details d", "access"));
        assert!(!mentions_table("SELECT my_access FROM t", "access"));
        assert!(mentions_table("JOIN access_details d", "access_details"));
        assert!(!mentions_table("-- one unexplained access is weak\nSELECT 1 FROM access_explained", "access"), "not in a comment");
    }

    #[test]
    fn only_plain_literals_reach_the_sql() {
        let ok: BTreeMap<String, String> = [("no_care.full_at".to_owned(), "2".to_owned()), ("x".to_owned(), "2026-11-16T00:00:00+01:00".to_owned())].into();
        assert!(check_params(&ok).is_ok());
        for bad in ["1; DROP TABLE events", "'a'", "", "1 OR 1=1"] {
            let params: BTreeMap<String, String> = [("p".to_owned(), bad.to_owned())].into();
            assert!(matches!(check_params(&params), Err(AnalyseError::Parameter { .. })), "{bad:?}");
        }
    }
}
