//! DuckDB (the real one, from PyPI) reads the store's Parquet with Hive partitioning and
//! counts exactly what `verify` reports.

use std::process::Command;

use crate::support::*;

fn python() -> String {
    std::env::var("LOGGVAKT_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

pub fn duckdb(sql: &str) -> String {
    let script = format!("import duckdb\nfor row in duckdb.sql({sql:?}).fetchall():\n    print('|'.join(str(v) for v in row))\n");
    let out = Command::new(python()).arg("-c").arg(script).output().expect("python3 runs");
    assert!(out.status.success(), "DuckDB query failed (scripts/install-test-deps installs the duckdb package):\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn duckdb_reads_the_partitions_and_counts_what_verify_reports() {
    let ws = Workspace::new();
    let store = ws.store_with_epochs();
    let out = loggvakt().arg("verify").arg("--store").arg(&store).arg("--trusted-keys").arg(&ws.trusted).arg("--json").output().expect("verify");
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let verified = report["records"].as_u64().expect("records");
    let glob = format!("{}/data/**/*.parquet", store.display());
    let counted = duckdb(&format!("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM read_parquet('{glob}', hive_partitioning=true)"));
    assert_eq!(counted, format!("{verified}|{verified}|1|{verified}"));
    // The Hive partition columns agree with the columns inside the files.
    let mismatches = duckdb(&format!(
        "SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) WHERE CAST(tenant AS VARCHAR) <> tenant_orgnr OR CAST(date AS VARCHAR) <> strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%d')"
    ));
    assert_eq!(mismatches, "0");
    let per_tenant = duckdb(&format!("SELECT sum(n) FROM (SELECT tenant, count(*) AS n FROM read_parquet('{glob}', hive_partitioning=true) GROUP BY tenant)"));
    assert_eq!(per_tenant, verified.to_string());
}
