//! The detector SQL as a DuckDB script: the same views and detectors over the same Parquet
//! (journal segments and context snapshot), so the SQL is checked to stay portable and the
//! two engines can be compared. The script prints one line `DUCKDB={json}` with the
//! seconds of each phase and the rows of each detector, and, as each phase ends, a line
//! `PHASE name seconds` on standard error (and `ROWS detector count` after a detector's),
//! so a run stopped part-way (a harness's time limit) still says how far it got.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::{AnalyseError, Period, Settings};

/// A Python script for the `duckdb` package (built-in queries and detectors); with
/// `memory_limit` (DuckDB's spelling: `6GB`) DuckDB is held to it as `loggvakt detect
/// --memory-limit` holds DataFusion.
pub fn duckdb_script(store: &Path, snapshot: &Path, settings: &Settings, period: Period, memory_limit: Option<&str>) -> Result<String, AnalyseError> {
    let mut common = period.values(settings.lookback_days);
    common.insert("org_filter".into(), "TRUE".into());
    let none = BTreeMap::new();
    let mut py = String::from(
        "import duckdb, json, sys, time\ncon = duckdb.connect()\ncon.execute(\"SET TimeZone='UTC'\")\nt0 = time.time()\nphases = {}\n\
         def ended(name, s):\n    phases[name] = time.time() - s\n    print(f'PHASE {name} {phases[name]:.1f}', file=sys.stderr, flush=True)\n",
    );
    if let Some(limit) = memory_limit {
        if !limit.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(AnalyseError::Query { context: "the DuckDB script".into(), reason: format!("memory limit {limit:?} is not a size such as 6GB") });
        }
        let _ = writeln!(py, "con.execute(\"SET memory_limit='{limit}'\")");
    }
    let _ = writeln!(
        py,
        "con.execute(\"CREATE VIEW events AS SELECT * FROM read_parquet('{}/data/**/*.parquet', hive_partitioning=true, hive_types={{'tenant': VARCHAR, 'date': VARCHAR}})\")",
        store.display()
    );
    for (table, _) in loggvakt_context::TABLES {
        let _ = writeln!(py, "con.execute(\"CREATE VIEW {table} AS SELECT * FROM read_parquet('{}/{table}.parquet')\")", snapshot.display());
    }
    let _ = writeln!(
        py,
        "con.execute(\"CREATE TABLE org_settings AS SELECT DISTINCT tenant AS orgnr, {b} AS window_before_days, {a} AS window_after_days, INTERVAL {b} DAY AS window_before, INTERVAL {a} DAY AS window_after FROM events\")",
        b = settings.window_before_days,
        a = settings.window_after_days
    );
    for q in crate::load_sql(None, "queries")? {
        let Some(view) = q.header.get("view") else { continue };
        let kind = if q.header.get("materialize").map(String::as_str) == Some("true") { "TABLE" } else { "VIEW" };
        let sql = q.render(&none, &common)?;
        let _ = writeln!(py, "s = time.time()\ncon.execute({:?})\nended({:?}, s)", format!("CREATE {kind} {view} AS {sql}"), view);
    }
    py.push_str("rows = {}\n");
    for d in crate::load_detectors(None)? {
        let sql = d.file.render(&none, &common)?;
        let _ = writeln!(
            py,
            "s = time.time()\ncon.execute({:?})\nended({:?}, s)\nrows[{id:?}] = con.execute('SELECT count(*) FROM r_{id}').fetchone()[0]\nprint('ROWS {id}', rows[{id:?}], file=sys.stderr, flush=True)",
            format!("CREATE TEMP TABLE r_{} AS {sql}", d.id),
            d.id,
            id = d.id
        );
    }
    py.push_str("print('DUCKDB=' + json.dumps({'total': time.time() - t0, 'phases': phases, 'rows': rows}))\n");
    Ok(py)
}
