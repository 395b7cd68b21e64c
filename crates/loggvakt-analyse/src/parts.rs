//! Queries (views and detectors) computed in parts: the `-- parts:` header, the part
//! function, the number of parts, and the split of the inputs into a file per part.
//!
//! A view whose header says `-- parts: access, care by patient_id` gives, for each row of
//! its first input `access`, a result that depends only on the rows of its inputs with
//! the same `patient_id` (and on other tables, read whole). The engine may then compute
//! it over one share of the inputs at a time: the rows whose key hashes to part `i` of
//! `n`, which `loggvakt_part(n, patient_id) = i` selects. The union of the parts is the
//! view. This bounds the memory of the joins that link accesses to care (DataFusion 55's
//! hash joins cannot spill): at 25 M accesses in one piece they needed more than 11.8 GiB.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray, StringViewArray, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::{exec_err, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use datafusion::prelude::{ident, lit, ParquetReadOptions, SessionContext};

use crate::detector::SqlFile;
use crate::AnalyseError;

/// The name of the function that picks a row's part, as SQL and the engine call it.
pub const PART_FUNCTION: &str = "loggvakt_part";

/// Memory one input row of a parted query is taken to need while its part is computed
/// (join build sides, aggregates, the result), so that a part fits half the limit and the
/// rest is left for what every part builds whole. Measured on a Helse Sør-Øst week (25 M
/// accesses; benches/RESULTS.md 2026-12-02): in 17 parts of 1.47 M the pool peaked at
/// 1 076 MiB in `access_links` (~770 bytes per access) and 1 260 MiB in `neighbour` (~900);
/// in 9 parts of 2.77 M at 2 012 and 2 166 MiB (~760 and ~820), under the 3 GiB half of a
/// 6 GiB limit. 2 KiB, the first guess, made twice the parts needed, each reading the
/// context's tables again.
pub const BYTES_PER_PARTED_ROW: usize = 1024;

/// What a `-- parts:` header asks: the inputs to restrict to a part, the first of them a
/// kept view whose rows size the parts, and the columns that keep rows together (each
/// input has them).
#[derive(Debug, Clone, PartialEq)]
pub struct PartSpec {
    pub inputs: Vec<String>,
    pub keys: Vec<String>,
}

impl PartSpec {
    /// Reads `-- parts: INPUT, INPUT by COLUMN, COLUMN` from a query's header; `None`
    /// without one.
    pub fn of(query: &SqlFile) -> Result<Option<PartSpec>, AnalyseError> {
        let Some(text) = query.header.get("parts") else { return Ok(None) };
        let bad = |reason: &str| AnalyseError::Definition { origin: query.origin.clone(), line: 0, reason: format!("parts: {text:?}: {reason}") };
        let (inputs, keys) = text.split_once(" by ").ok_or_else(|| bad("expected 'VIEW, TABLE by COLUMN, COLUMN'"))?;
        let names = |list: &str| -> Vec<String> { list.split(',').map(|k| k.trim().to_owned()).collect() };
        let word = |w: &String| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        let (inputs, keys) = (names(inputs), names(keys));
        if !inputs.iter().chain(&keys).all(word) {
            return Err(bad("the inputs and the columns must be plain names"));
        }
        Ok(Some(PartSpec { inputs, keys }))
    }

    /// How many parts `rows` input rows need so that one part fits half of `limit` bytes
    /// and holds at most `max_rows` rows; one when neither bounds it.
    pub fn parts_for(rows: usize, limit: Option<usize>, max_rows: Option<usize>) -> usize {
        let by_memory = limit.map(|limit| ((limit / 2) / BYTES_PER_PARTED_ROW).max(1));
        match by_memory.into_iter().chain(max_rows).min() {
            None => 1,
            Some(per_part) => rows.div_ceil(per_part.max(1)).max(1),
        }
    }
}

/// A query being computed in parts: its inputs as registered before (restored after), and
/// each input split into one Parquet file per part.
pub struct Parted {
    whole: Vec<(String, Arc<dyn TableProvider>)>,
    files: Vec<Vec<PathBuf>>,
    pub parts: usize,
}

/// Inputs already split, by (input, keys, parts): the detectors that ask for the same parts
/// of `access_explained` share one split.
#[derive(Default)]
pub struct Splits(HashMap<(String, Vec<String>, usize), Vec<PathBuf>>);

impl Splits {
    /// Deletes the splits of every input but those `wanted` names: once the views are built
    /// the split of `access` is not read again, and at a region's week the views' splits
    /// take ~1.5 GB of temporary disk; a context table that detectors are parted by too
    /// (`care`) is split once for both.
    pub fn delete_unless(&mut self, wanted: impl Fn(&str) -> bool) -> Result<(), AnalyseError> {
        let unwanted: Vec<_> = self.0.keys().filter(|(input, _, _)| !wanted(input)).cloned().collect();
        for key in unwanted {
            for file in self.0.remove(&key).unwrap_or_default() {
                std::fs::remove_file(&file).map_err(|e| AnalyseError::io(&file, e))?;
            }
        }
        Ok(())
    }
}

impl Parted {
    /// The parts `query` is to be computed in, if its header asks for them and its first
    /// input's `rows` need more than one; `None` to compute it whole. Each input is split
    /// into `dir` once (one read, one write) and reused from `splits` after: selecting a
    /// part by a filter over the whole input read and hashed every row of it once per part
    /// (a region's week: 25 parts, 9 detectors, 657 s in detectors).
    pub async fn plan(
        ctx: &SessionContext,
        query: &SqlFile,
        rows_of: impl Fn(&str) -> Option<usize>,
        limit: Option<usize>,
        max_rows: Option<usize>,
        splits: &mut Splits,
        dir: &Path,
    ) -> Result<Option<Parted>, AnalyseError> {
        let Some(spec) = PartSpec::of(query)? else { return Ok(None) };
        let rows = spec.inputs.first().and_then(|first| rows_of(first)).ok_or_else(|| AnalyseError::Definition {
            origin: query.origin.clone(),
            line: 0,
            reason: "parts: the first input must be a view computed before it with 'materialize: true'".into(),
        })?;
        let parts = PartSpec::parts_for(rows, limit, max_rows);
        if parts < 2 {
            return Ok(None);
        }
        let failed =
            |input: &str, e: &dyn std::fmt::Display| AnalyseError::Query { context: format!("{}: splitting {input} into {parts} parts", query.origin), reason: e.to_string() };
        let (mut whole, mut files) = (Vec::new(), Vec::new());
        for input in &spec.inputs {
            let table = ctx.table_provider(input.as_str()).await.map_err(|e| failed(input, &e))?;
            let key = (input.clone(), spec.keys.clone(), parts);
            if !splits.0.contains_key(&key) {
                let to = dir.join(format!("{input}-by-{}-{parts}", spec.keys.join("-")));
                std::fs::create_dir_all(&to).map_err(|e| AnalyseError::io(&to, e))?;
                let written = split(ctx, table.clone(), &spec.keys, parts, &to).await.map_err(|e| failed(input, &e))?;
                splits.0.insert(key.clone(), written);
            }
            files.push(splits.0[&key].clone());
            whole.push((input.clone(), table));
        }
        Ok(Some(Parted { whole, files, parts }))
    }

    /// Registers each input as the rows of part `part` only (its file of the split).
    pub async fn select(&self, ctx: &SessionContext, part: usize) -> Result<()> {
        for ((name, _), files) in self.whole.iter().zip(&self.files) {
            ctx.deregister_table(name.as_str())?;
            ctx.register_parquet(name.as_str(), &files[part].display().to_string(), ParquetReadOptions::default()).await?;
        }
        Ok(())
    }

    /// Registers each input whole again.
    pub fn restore(self, ctx: &SessionContext) -> Result<()> {
        for (name, table) in self.whole {
            ctx.deregister_table(name.as_str())?;
            ctx.register_table(name.as_str(), table)?;
        }
        Ok(())
    }
}

/// Rows all parts' files together buffer before they write row groups: every part's
/// writer is open at once, so each gets its share as its row group size, and the split
/// holds about this many rows whatever the number of parts (1 M rows of
/// `access_explained`, ~150 MB), never fewer than 1 024 rows a part.
const SPLIT_BUFFER_ROWS: usize = 1 << 20;

/// Writes `table` into `dir` as one Parquet file per part (`part-0000.parquet`, …), each
/// holding the rows whose keys fall in that part; reads the table once.
async fn split(ctx: &SessionContext, table: Arc<dyn TableProvider>, keys: &[String], parts: usize, dir: &Path) -> Result<Vec<PathBuf>> {
    let args = std::iter::once(lit(parts as i64)).chain(keys.iter().map(ident)).collect();
    let frame = ctx.read_table(table)?;
    let columns = frame.schema().fields().len();
    let mut stream = frame.with_column("__loggvakt_part", PartFunction::udf().call(args))?.execute_stream().await?;
    let kept: Vec<usize> = (0..columns).collect();
    let schema = Arc::new(stream.schema().project(&kept)?);
    let mut properties = WriterProperties::builder().set_compression(Compression::LZ4_RAW).set_max_row_group_row_count(Some((SPLIT_BUFFER_ROWS / parts).max(1024)));
    for field in schema.fields().iter().filter(|f| !worth_a_dictionary(f, keys)) {
        properties = properties.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
    }
    let properties = properties.build();
    let paths: Vec<PathBuf> = (0..parts).map(|p| dir.join(format!("part-{p:04}.parquet"))).collect();
    let mut writers = Vec::with_capacity(parts);
    for path in &paths {
        let file = std::fs::File::create(path).map_err(DataFusionError::IoError)?;
        writers.push(ArrowWriter::try_new(file, schema.clone(), Some(properties.clone()))?);
    }
    // One pass over each batch gathers every part's row numbers, then each part takes its
    // rows: a mask and a filter per part read the whole batch once per part.
    let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); parts];
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let Some(part_of) = batch.column(columns).as_any().downcast_ref::<Int64Array>() else { return exec_err!("{PART_FUNCTION} gave no integers") };
        let rows = batch.project(&kept)?;
        for (row, &part) in part_of.values().iter().enumerate() {
            let Some(list) = usize::try_from(part).ok().and_then(|p| rows_of.get_mut(p)) else { return exec_err!("{PART_FUNCTION} gave part {part} of {parts}") };
            list.push(row as u32);
        }
        for (list, writer) in rows_of.iter_mut().zip(writers.iter_mut()) {
            if !list.is_empty() {
                writer.write(&take_record_batch(&rows, &UInt32Array::from(std::mem::take(list)))?)?;
            }
        }
    }
    for writer in writers {
        writer.close()?;
    }
    Ok(paths)
}

/// Whether a column of a file the engine writes for itself (a view, a split) gets Parquet
/// dictionary pages: text does (tenants, units, roles, accessors repeat), numbers, times
/// and the keys of a split do not (sequence numbers, instants and the patients of one part
/// hardly repeat, and the writer hashed each value into a dictionary it then gave up on at
/// every row group: ~12 % of `access_links` on a region's week by perf). Turning it off for
/// text as well made every detector's read of `access_explained` slower (`own_record` 0.3 s
/// → 0.6 s in one run).
pub(crate) fn worth_a_dictionary(field: &datafusion::arrow::datatypes::Field, keys: &[String]) -> bool {
    matches!(field.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..)) && !keys.contains(field.name())
}

/// `loggvakt_part(n, key, …)`: which of `n` parts a row belongs to, from its key columns
/// (any text, dictionary or number type; NULL is a value of its own). A fixed hash
/// (FNV-1a over each key's text), so a part holds the same rows in every run.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PartFunction {
    signature: Signature,
}

impl PartFunction {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(PartFunction { signature: Signature::variadic_any(Volatility::Immutable) })
    }
}

impl ScalarUDFImpl for PartFunction {
    fn name(&self) -> &str {
        PART_FUNCTION
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let Some((first, keys)) = args.args.split_first() else { return exec_err!("{PART_FUNCTION}(n, key, …) needs the number of parts and a key") };
        let parts = match first {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if *n > 0 => *n as u64,
            other => return exec_err!("{PART_FUNCTION}: the number of parts must be a positive integer literal, not {other:?}"),
        };
        // Text as it comes (Utf8 or the Utf8View that Parquet is read as), anything else
        // cast to text first; a cast copied every key of the split's 25 M rows.
        let arrays: Vec<ArrayRef> = keys
            .iter()
            .map(|k| {
                let a = k.to_array(rows)?;
                Ok(match a.data_type() {
                    DataType::Utf8 | DataType::Utf8View => a,
                    _ => cast(&a, &DataType::Utf8)?,
                })
            })
            .collect::<Result<_>>()?;
        let texts: Vec<Text<'_>> = arrays
            .iter()
            .map(|a| match (a.as_any().downcast_ref::<StringArray>(), a.as_any().downcast_ref::<StringViewArray>()) {
                (Some(text), _) => Ok(Text::Utf8(text)),
                (None, Some(view)) => Ok(Text::View(view)),
                _ => exec_err!("{PART_FUNCTION}: a key is not text after a cast"),
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for column in &texts {
                // A marker before each key: NULL and '' differ, and ('ab', 'c') from ('a', 'bc').
                let (marker, bytes) = match column.bytes(row) {
                    None => (0u8, &[][..]),
                    Some(bytes) => (1u8, bytes),
                };
                for &b in std::iter::once(&marker).chain(bytes).chain(&[0xff]) {
                    hash = (hash ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
            }
            out.push((hash % parts) as i64);
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// A text key column as the part function reads it.
enum Text<'a> {
    Utf8(&'a StringArray),
    View(&'a StringViewArray),
}

impl Text<'_> {
    fn bytes(&self, row: usize) -> Option<&[u8]> {
        match self {
            Text::Utf8(a) => (!a.is_null(row)).then(|| a.value(row).as_bytes()),
            Text::View(a) => (!a.is_null(row)).then(|| a.value(row).as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_with_the_rows_and_shrink_with_the_limit() {
        assert_eq!(PartSpec::parts_for(25_000_000, None, None), 1);
        assert_eq!(PartSpec::parts_for(1000, Some(8 << 30), None), 1);
        let hso = PartSpec::parts_for(25_000_000, Some(8 << 30), None);
        assert!((5..=7).contains(&hso), "{hso}");
        assert!(PartSpec::parts_for(25_000_000, Some(4 << 30), None) > hso);
        assert_eq!(PartSpec::parts_for(15_000, None, Some(4_000)), 4, "a setting bounds the rows without a limit");
        assert_eq!(PartSpec::parts_for(25_000_000, Some(8 << 30), Some(100_000_000)), hso, "the smaller bound holds");
    }

    #[test]
    fn the_header_names_the_input_and_its_keys() {
        let q = SqlFile::parse("q.sql", "-- view: v\n-- parts: access, care by patient_id\nSELECT 1").unwrap();
        assert_eq!(PartSpec::of(&q).unwrap(), Some(PartSpec { inputs: vec!["access".into(), "care".into()], keys: vec!["patient_id".into()] }));
        let bad = SqlFile::parse("q.sql", "-- view: v\n-- parts: access, tenant\nSELECT 1").unwrap();
        assert!(matches!(PartSpec::of(&bad), Err(AnalyseError::Definition { .. })));
    }

    #[tokio::test]
    async fn every_row_falls_in_one_part_and_equal_keys_together() {
        let ctx = SessionContext::new();
        ctx.register_udf(PartFunction::udf());
        let sql = "WITH t AS (SELECT * FROM (VALUES ('a', 'x'), ('a', 'x'), ('a', NULL), ('b', 'y'), ('c', ''), ('c', NULL)) AS v(tenant, unit)) \
            SELECT tenant, unit, loggvakt_part(3, tenant, unit) AS part FROM t ORDER BY tenant, unit";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let parts: Vec<i64> = batches.iter().flat_map(|b| b.column(2).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()).collect();
        assert_eq!(parts.len(), 6);
        assert!(parts.iter().all(|p| (0..3).contains(p)));
        assert_eq!(parts[0], parts[1], "equal keys, one part");
        // The same keys as dictionary-encoded text land in the same part.
        let dict = "SELECT loggvakt_part(3, arrow_cast('a', 'Dictionary(Int32, Utf8)'), arrow_cast('x', 'Utf8View')) AS part";
        let batches = ctx.sql(dict).await.unwrap().collect().await.unwrap();
        assert_eq!(batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), parts[0]);
    }
}
