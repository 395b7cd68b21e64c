//! The DuckDB peer of the benchmarks: SQL statements (`; `-separated) run by Python's
//! duckdb, timed inside the interpreter. Shared by the benchmark programs.

use std::process::Command;

use anyhow::{bail, Context};

/// Runs the statements; the seconds they took, and the last statement's row count and first
/// value (`"<rows> <first>"`).
pub fn run(python: &str, sql: &str) -> anyhow::Result<(String, f64)> {
    let script = format!(
        "import duckdb, time\ncon = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\nt = time.time()\nrows = None\nfor stmt in {sql:?}.split('; '):\n    rows = con.execute(stmt).fetchall()\nprint(time.time() - t)\nprint(len(rows), rows[0][0] if rows else '')\n"
    );
    let out = Command::new(python).arg("-c").arg(&script).output().context("running python3 with duckdb")?;
    if !out.status.success() {
        bail!("DuckDB failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let secs = lines.next().unwrap_or("0").trim().parse()?;
    Ok((lines.next().unwrap_or("").to_owned(), secs))
}
