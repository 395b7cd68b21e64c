//! The detector SQL as a DuckDB script: the same views and detectors over the same Parquet
//! (journal segments and context snapshot), so the SQL is checked to stay portable and the
//! two engines can be compared. The script prints one line `DUCKDB={json}` with the
//! seconds of each phase and the rows of each detector.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::{AnalyseError, Period, Settings};

/// A Python script for the `duckdb` package (built-in queries and detectors).
pub fn duckdb_script(store: &Path, snapshot: &Path, settings: &Settings, period: Period) -> Result<String, AnalyseError> {
    let mut common = period.values(settings.lookback_days);
    common.insert("org_filter".into(), "TRUE".into());
    let none = BTreeMap::new();
    let mut py = String::from("import duckdb, json, time\ncon = duckdb.connect()\ncon.execute(\"SET TimeZone='UTC'\")\nt0 = time.time()\nphases = {}\n");
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
        let _ = writeln!(py, "s = time.time()\ncon.execute({:?})\nphases[{:?}] = time.time() - s", format!("CREATE {kind} {view} AS {sql}"), view);
    }
    py.push_str("rows = {}\n");
    for d in crate::load_detectors(None)? {
        let sql = d.file.render(&none, &common)?;
        let _ = writeln!(
            py,
            "s = time.time()\ncon.execute({:?})\nphases[{:?}] = time.time() - s\nrows[{:?}] = con.execute('SELECT count(*) FROM r_{}').fetchone()[0]",
            format!("CREATE TEMP TABLE r_{} AS {sql}", d.id),
            d.id,
            d.id,
            d.id
        );
    }
    py.push_str("print('DUCKDB=' + json.dumps({'total': time.time() - t0, 'phases': phases, 'rows': rows}))\n");
    Ok(py)
}
