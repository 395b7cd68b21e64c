//! How the tables a review makes itself travel to a cluster's scheduler.
//!
//! DataFusion's plan format carries Parquet listings and views by itself; a review adds two
//! kinds of its own: the events pinned to a checkpoint (an explicit file list,
//! [`PinnedSegments`]) and small in-memory tables (the organisations' settings, the seqs of
//! flagged accesses). [`ReviewCodec`] writes them as a tag byte and their content (the file
//! list as JSON, a memory table as an Arrow IPC stream), and hands everything else to
//! Ballista's codec.

use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use loggvakt_analyse::PinnedSegments;

const PINNED: u8 = b'P';
const MEMORY: u8 = b'M';

/// Ballista's logical codec, and loggvakt's own tables.
#[derive(Debug, Default)]
pub struct ReviewCodec {
    ballista: BallistaLogicalExtensionCodec,
}

fn corrupt(what: &str, reason: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Internal(format!("a plan's {what} could not be read back: {reason}"))
}

impl LogicalExtensionCodec for ReviewCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(&self, buf: &[u8], table_ref: &TableReference, schema: SchemaRef, ctx: &TaskContext) -> Result<Arc<dyn TableProvider>> {
        match buf.split_first() {
            Some((&PINNED, list)) => Ok(Arc::new(PinnedSegments::from_bytes(list).map_err(|e| corrupt("pinned events", e))?)),
            Some((&MEMORY, ipc)) => {
                let reader = StreamReader::try_new(ipc, None).map_err(|e| corrupt(&format!("table {table_ref}"), e))?;
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| corrupt(&format!("table {table_ref}"), e))?;
                Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
            }
            _ => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(&self, table_ref: &TableReference, node: Arc<dyn TableProvider>, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(pinned) = node.downcast_ref::<PinnedSegments>() {
            buf.push(PINNED);
            buf.extend(pinned.to_bytes());
            return Ok(());
        }
        if let Some(memory) = node.downcast_ref::<MemTable>() {
            // The review's memory tables are a few rows (settings per organisation, the
            // flagged seqs); they go whole, in one partition.
            buf.push(MEMORY);
            let mut writer = StreamWriter::try_new(&mut *buf, &memory.schema())?;
            for partition in &memory.batches {
                let batches = partition.try_read().map_err(|_| DataFusionError::Internal(format!("table {table_ref} is being written while a plan is sent")))?;
                for batch in batches.iter() {
                    writer.write(batch)?;
                }
            }
            writer.finish()?;
            return Ok(());
        }
        self.ballista.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        self.ballista.try_decode_udf(name, buf)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.ballista.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.ballista.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode_udwf(node, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;

    #[test]
    fn a_memory_table_travels_whole_and_other_providers_go_to_ballista() {
        let schema = Arc::new(Schema::new(vec![Field::new("orgnr", DataType::Utf8, false), Field::new("days", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["974749025", "983971636"])), Arc::new(Int64Array::from(vec![30, 7]))]).unwrap();
        let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap());
        let codec = ReviewCodec::default();
        let name = TableReference::bare("org_settings");
        let mut buf = Vec::new();
        codec.try_encode_table_provider(&name, table, &mut buf).unwrap();
        assert_eq!(buf[0], MEMORY);
        let ctx = SessionContext::new();
        let back = codec.try_decode_table_provider(&buf, &name, schema.clone(), &ctx.task_ctx()).unwrap();
        let memory = back.downcast_ref::<MemTable>().expect("a memory table");
        let batches = memory.batches[0].try_read().unwrap().clone();
        assert_eq!(batches, vec![batch], "the same rows");

        let mut truncated = buf.clone();
        truncated.truncate(buf.len() / 2);
        let error = codec.try_decode_table_provider(&truncated, &name, schema.clone(), &ctx.task_ctx()).unwrap_err().to_string();
        assert!(error.contains("org_settings"), "a damaged plan names the table: {error}");

        let empty: Arc<dyn TableProvider> = Arc::new(datafusion::datasource::empty::EmptyTable::new(schema));
        assert!(codec.try_encode_table_provider(&name, empty, &mut Vec::new()).is_err(), "what neither codec knows is refused, not sent empty");
    }
}
