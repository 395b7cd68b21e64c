//! Common table expressions computed once: the `-- keep: NAME, NAME` header of a view or a
//! detector.
//!
//! DataFusion 55 inlines a CTE at every reference (apache/datafusion#8777), so a CTE that
//! four parts of a query read is computed four times, and whatever it reads in turn is
//! computed again for each. `celebrity` derived its `opened` pairs (an aggregate over
//! every patient, accessor and day of the period) nine times: 91 s of a Helse Sør-Øst
//! week's review. A query's header may name such CTEs; the engine then computes each one
//! once, in the order the query defines them, writes it as Parquet into the run's
//! temporary directory, registers it as a table under its name, and runs the rest of the
//! query, whose references now read the file. The result is the same; only the work is
//! not repeated. DuckDB (the portable script) ignores the header: it materialises a CTE
//! read more than once by itself.
//!
//! The query's text is parsed once and rewritten as a syntax tree, never as text, so what
//! is run is exactly what the file says.

use std::path::{Path, PathBuf};

use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Cte, Query, Statement, With};

use crate::detector::SqlFile;
use crate::AnalyseError;

/// The CTEs of one query computed and registered as tables: let go with [`Kept::release`]
/// once the query's result is taken.
#[must_use = "the kept tables stay registered until released"]
pub(crate) struct Kept {
    names: Vec<String>,
    dir: Option<PathBuf>,
}

impl Kept {
    /// The names the header lists, in its order; empty without a `keep:` line.
    pub fn names_of(query: &SqlFile) -> Vec<String> {
        query.header.get("keep").map(|list| list.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect()).unwrap_or_default()
    }

    /// Deregisters the kept tables and deletes their files.
    pub fn release(self, ctx: &SessionContext) -> Result<(), AnalyseError> {
        for name in &self.names {
            ctx.deregister_table(name.as_str()).map_err(|e| AnalyseError::Query { context: format!("letting go of the kept CTE {name}"), reason: e.to_string() })?;
        }
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).map_err(|e| AnalyseError::io(dir, e))?;
        }
        Ok(())
    }
}

/// `sql` (the rendered body of `query`) as a DataFrame to run, after computing the CTEs its
/// header keeps (into `dir/NAME.parquet`); without a `keep:` line, just the query.
pub(crate) async fn frame(ctx: &SessionContext, query: &SqlFile, sql: &str, dir: &Path) -> Result<(DataFrame, Kept), AnalyseError> {
    let failed = |reason: String| AnalyseError::Query { context: query.origin.clone(), reason };
    let keep = Kept::names_of(query);
    if keep.is_empty() {
        let frame = ctx.sql(sql).await.map_err(|e| crate::engine::df(&query.origin, e))?;
        return Ok((frame, Kept { names: Vec::new(), dir: None }));
    }
    let definition = |reason: String| AnalyseError::Definition { origin: query.origin.clone(), line: 0, reason };
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state.sql_to_statement(sql, &dialect).map_err(|e| failed(e.to_string()))?;
    let DfStatement::Statement(statement) = statement else { return Err(definition("keep: the query must be one SELECT".into())) };
    let Statement::Query(mut outer) = *statement else { return Err(definition("keep: the query must be one SELECT".into())) };
    let Some(with) = outer.with.take() else { return Err(definition(format!("keep: {} names CTEs, but the query has no WITH", keep.join(", ")))) };
    for name in &keep {
        if !with.cte_tables.iter().any(|cte| cte.alias.name.value == *name) {
            return Err(definition(format!("keep: the query defines no CTE named {name}")));
        }
        if ctx.table_exist(name.as_str()).unwrap_or(false) {
            return Err(definition(format!("keep: {name} is also the name of a table; rename the CTE")));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| AnalyseError::io(dir, e))?;
    let mut kept = Kept { names: Vec::new(), dir: Some(dir.to_owned()) };
    // CTEs still inlined, in the query's order; a kept one leaves the list once it is a table.
    let mut inlined: Vec<Cte> = Vec::new();
    for cte in with.cte_tables {
        let name = cte.alias.name.value.clone();
        if !keep.contains(&name) {
            inlined.push(cte);
            continue;
        }
        let body = with_ctes(*cte.query, &inlined, with.with_token.clone());
        let result = async {
            let plan = state.statement_to_plan(DfStatement::Statement(Box::new(Statement::Query(Box::new(body))))).await?;
            let frame = ctx.execute_logical_plan(plan).await?;
            let path = dir.join(format!("{name}.parquet"));
            crate::engine::write_view(frame, &path).await?;
            ctx.register_parquet(name.as_str(), &path.display().to_string(), ParquetReadOptions::default()).await
        }
        .await;
        if let Err(e) = result {
            let _ = kept.release(ctx);
            return Err(crate::engine::df(&format!("{} (the kept CTE {name})", query.origin), e));
        }
        kept.names.push(name);
    }
    outer.with = (!inlined.is_empty()).then_some(With { with_token: with.with_token, recursive: with.recursive, cte_tables: inlined });
    match async { ctx.execute_logical_plan(state.statement_to_plan(DfStatement::Statement(Box::new(Statement::Query(outer)))).await?).await }.await {
        Ok(frame) => Ok((frame, kept)),
        Err(e) => {
            let _ = kept.release(ctx);
            Err(crate::engine::df(&query.origin, e))
        }
    }
}

/// `query` with the CTEs before it in front of its own: a kept CTE computed alone still
/// sees the CTEs it reads.
fn with_ctes(mut query: Query, before: &[Cte], token: datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken) -> Query {
    if before.is_empty() {
        return query;
    }
    match &mut query.with {
        Some(own) => {
            let mut all = before.to_vec();
            all.append(&mut own.cte_tables);
            own.cte_tables = all;
        }
        None => query.with = Some(With { with_token: token, recursive: false, cte_tables: before.to_vec() }),
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    async fn run(ctx: &SessionContext, file: &SqlFile, dir: &Path) -> Vec<i64> {
        let (frame, kept) = frame(ctx, file, &file.body, dir).await.unwrap();
        let batches = frame.collect().await.unwrap();
        kept.release(ctx).unwrap();
        batches.iter().flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect()
    }

    #[tokio::test]
    async fn a_kept_cte_gives_the_same_result_and_is_let_go_after() {
        let ctx = SessionContext::new();
        let dir = tempfile::tempdir().unwrap();
        let body = "WITH t AS (SELECT * FROM (VALUES (1), (2), (3), (3)) AS v(x)), \
                    d AS (SELECT DISTINCT x FROM t), \
                    s AS (SELECT SUM(x) AS total FROM d) \
                    SELECT CAST(d.x * s.total AS BIGINT) AS y FROM d, s, (SELECT COUNT(*) AS n FROM t) c WHERE c.n = 4 ORDER BY y";
        let plain = SqlFile::parse("q.sql", &format!("-- view: q\n{body}")).unwrap();
        let kept = SqlFile::parse("q.sql", &format!("-- view: q\n-- keep: d, s\n{body}")).unwrap();
        let expected = run(&ctx, &plain, &dir.path().join("plain")).await;
        assert_eq!(expected, vec![6, 12, 18]);
        assert_eq!(run(&ctx, &kept, &dir.path().join("kept")).await, expected);
        assert!(!ctx.table_exist("d").unwrap() && !ctx.table_exist("s").unwrap(), "released");
        assert!(!dir.path().join("kept").exists(), "its files deleted");
    }

    #[tokio::test]
    async fn keeping_what_the_query_does_not_define_is_an_error() {
        let ctx = SessionContext::new();
        let dir = tempfile::tempdir().unwrap();
        let missing = SqlFile::parse("q.sql", "-- view: q\n-- keep: nothing\nWITH t AS (SELECT 1 AS x) SELECT x FROM t").unwrap();
        let Err(AnalyseError::Definition { reason, .. }) = frame(&ctx, &missing, &missing.body, dir.path()).await else { panic!("expected a definition error") };
        assert!(reason.contains("no CTE named nothing"), "{reason}");
        ctx.sql("CREATE TABLE t AS SELECT 2 AS x").await.unwrap().collect().await.unwrap();
        let clash = SqlFile::parse("q.sql", "-- view: q\n-- keep: t\nWITH t AS (SELECT 1 AS x) SELECT x FROM t").unwrap();
        let Err(AnalyseError::Definition { reason, .. }) = frame(&ctx, &clash, &clash.body, dir.path()).await else { panic!("expected a definition error") };
        assert!(reason.contains("also the name of a table"), "{reason}");
    }
}
