//! The journal's events as a review reads them: exactly the segment files that the epoch
//! index lists for the epochs a signed checkpoint covers, handed to DataFusion as an
//! explicit file list, with `tenant` and `date` taken from each file's partition path. No
//! directory is listed, so neither a seal in progress nor a planted file can change what a
//! review reads; rerunning it on the same checkpoint reads the same files.
//!
//! Only the date partitions a review can use are listed (its lookback to its last day):
//! the views read events through those dates and no other.
//!
//! The files are read from the store directory, or from a published copy of it in a bucket
//! (the same names under its prefix, `docs/format.md` §7a). The list travels with the plan
//! ([`PinnedSegments::to_bytes`]): a cluster's scheduler and executors scan the very files
//! the review pinned, not a listing of their own.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;

use crate::AnalyseError;

#[derive(Debug)]
pub struct PinnedSegments {
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    schema: SchemaRef,
    list: FileList,
    files: Vec<PartitionedFile>,
}

/// What a [`PinnedSegments`] is made from, and all that travels to a cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FileList {
    /// `file:///` or `s3://bucket`.
    object_store: String,
    files: Vec<PinnedFile>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PinnedFile {
    /// Within the object store: an absolute path without its leading `/`, or a key.
    location: String,
    size: u64,
    tenant: String,
    date: String,
}

/// Where a review reads the store's files from: the store directory itself, or a published
/// copy of it (`s3://bucket/prefix`).
#[derive(Debug, Clone, Copy)]
pub enum ReadFrom<'a> {
    Store,
    Bucket { bucket: &'a str, prefix: &'a str },
}

impl ReadFrom<'_> {
    /// The object store's URL and the location of `relative` (a name in the store) in it.
    pub fn locate(&self, store: &Path, relative: &str) -> Result<(String, String), AnalyseError> {
        let location = match self {
            ReadFrom::Store => {
                let path = store.join(relative);
                let absolute = std::path::absolute(&path).map_err(|e| AnalyseError::io(&path, e))?;
                absolute.to_string_lossy().trim_start_matches('/').to_owned()
            }
            ReadFrom::Bucket { prefix: "", .. } => relative.to_owned(),
            ReadFrom::Bucket { prefix, .. } => format!("{prefix}/{relative}"),
        };
        Ok((self.object_store(), location))
    }

    /// The object store's URL: `file:///` or `s3://bucket`.
    pub fn object_store(&self) -> String {
        match self {
            ReadFrom::Store => "file:///".to_owned(),
            ReadFrom::Bucket { bucket, .. } => format!("s3://{bucket}"),
        }
    }
}

impl PinnedSegments {
    /// The segments of the epochs whose records all have `seq <= through_seq`, with a
    /// partition date from `first_date` to `last_date` (`YYYY-MM-DD`, both included), read
    /// from where `read_from` says. Their sizes are the store's own files' (a published copy
    /// holds the same bytes).
    pub fn open(store: &Path, read_from: ReadFrom<'_>, through_seq: u64, first_date: &str, last_date: &str) -> Result<PinnedSegments, AnalyseError> {
        let format_error = |e: loggvakt_format::StoreError| AnalyseError::Query { context: "the journal's epoch index".into(), reason: e.to_string() };
        let mut files = Vec::new();
        for manifest in loggvakt_format::index::read_epochs(store).map_err(format_error)?.into_iter().filter(|m| m.last_seq <= through_seq) {
            for segment in manifest.segments {
                let (Some(tenant), Some(date)) = loggvakt_format::segment::partition_of(&segment.path) else {
                    continue;
                };
                if date < first_date || date > last_date {
                    continue;
                }
                let path = store.join(&segment.path);
                let size = std::fs::metadata(&path).map_err(|e| AnalyseError::io(&path, e))?.len();
                let (_, location) = read_from.locate(store, &segment.path)?;
                files.push(PinnedFile { location, size, tenant: tenant.to_owned(), date: date.to_owned() });
            }
        }
        Ok(Self::from_list(FileList { object_store: read_from.object_store(), files }))
    }

    /// The file list as bytes, for a plan sent to a cluster.
    pub fn to_bytes(&self) -> Vec<u8> {
        // A list of plain strings and numbers: serialising it cannot fail.
        serde_json::to_vec(&self.list).unwrap_or_default()
    }

    /// The table [`PinnedSegments::to_bytes`] described, as a cluster's scheduler rebuilds it.
    pub fn from_bytes(bytes: &[u8]) -> Result<PinnedSegments, serde_json::Error> {
        Ok(Self::from_list(serde_json::from_slice(bytes)?))
    }

    fn from_list(list: FileList) -> PinnedSegments {
        let files = list
            .files
            .iter()
            .map(|f| {
                PartitionedFile::new(f.location.clone(), f.size).with_partition_values(vec![ScalarValue::Utf8(Some(f.tenant.clone())), ScalarValue::Utf8(Some(f.date.clone()))])
            })
            .collect();
        let file_schema = loggvakt_format::segment::segment_schema();
        let partition_fields: Vec<FieldRef> = vec![Arc::new(Field::new("tenant", DataType::Utf8, false)), Arc::new(Field::new("date", DataType::Utf8, false))];
        let schema = Arc::new(Schema::new(file_schema.fields().iter().cloned().chain(partition_fields.iter().cloned()).collect::<Vec<_>>()));
        PinnedSegments { file_schema, partition_fields, schema, list, files }
    }
}

#[async_trait]
impl TableProvider for PinnedSegments {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter stays above the scan (Inexact), and DataFusion's physical optimizer
    /// pushes it into the Parquet source for row-group and page pruning, as for any Parquet
    /// table. Comparisons of `tenant` or `date` with a literal also prune whole files here,
    /// from their partition values: the period's views then open only the period's files.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let bounds: Vec<PartitionBound> = filters.iter().filter_map(PartitionBound::of).collect();
        let files: Vec<&PartitionedFile> = self.files.iter().filter(|f| bounds.iter().all(|b| b.admits(f))).collect();
        if files.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        for (i, file) in files.into_iter().enumerate() {
            let n = groups.len();
            groups[i % n].push(file.clone());
        }
        let source = ParquetSource::new(TableSchema::builder(self.file_schema.clone()).with_table_partition_cols(self.partition_fields.clone()).build());
        let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(&self.list.object_store)?, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

/// A comparison of a partition column with a text literal (`date >= '2026-11-16'`,
/// `tenant = '983971636'`), which a file's partition value answers without reading it.
struct PartitionBound {
    /// 0: tenant, 1: date (the order of the partition values).
    column: usize,
    op: Operator,
    value: String,
}

impl PartitionBound {
    fn of(expr: &Expr) -> Option<PartitionBound> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return None };
        let literal = |e: &Expr| match e {
            Expr::Literal(ScalarValue::Utf8(Some(v)) | ScalarValue::LargeUtf8(Some(v)) | ScalarValue::Utf8View(Some(v)), _) => Some(v.clone()),
            _ => None,
        };
        let column = |e: &Expr| match e {
            Expr::Column(c) if c.name == "tenant" => Some(0),
            Expr::Column(c) if c.name == "date" => Some(1),
            _ => None,
        };
        match (column(left), literal(right), column(right), literal(left)) {
            (Some(column), Some(value), _, _) => Some(PartitionBound { column, op: *op, value }),
            (_, _, Some(column), Some(value)) => Some(PartitionBound { column, op: op.swap()?, value }),
            _ => None,
        }
    }

    /// Could a row of this file pass the comparison? (Unknown operators admit.)
    fn admits(&self, file: &PartitionedFile) -> bool {
        let Some(ScalarValue::Utf8(Some(v))) = file.partition_values.get(self.column) else { return true };
        let (v, x) = (v.as_str(), self.value.as_str());
        match self.op {
            Operator::Eq => v == x,
            Operator::NotEq => v != x,
            Operator::Lt => v < x,
            Operator::LtEq => v <= x,
            Operator::Gt => v > x,
            Operator::GtEq => v >= x,
            _ => true,
        }
    }
}
