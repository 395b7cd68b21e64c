//! The context tables: their columns (defined once, here) and a row builder that writes
//! them as Parquet. Times are UTC microseconds, like the journal's; an open period has a
//! null end.

use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::ContextError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// A column's type in a context table.
pub enum Kind {
    Text,
    Int,
    Time,
    Flag,
}

/// The tables of a snapshot and their columns. `docs/context.md` explains each.
pub const TABLES: &[(&str, &[(&str, Kind)])] = &[
    ("resources", &[("resource_type", Kind::Text), ("id", Kind::Text), ("content_hash", Kind::Text), ("json", Kind::Text)]),
    ("organization", &[("org_ref", Kind::Text), ("orgnr", Kind::Text), ("resh", Kind::Text), ("name", Kind::Text), ("part_of_ref", Kind::Text)]),
    (
        "person",
        &[
            ("person_id", Kind::Text),
            ("patient_ref", Kind::Text),
            ("family", Kind::Text),
            ("given", Kind::Text),
            ("family_key", Kind::Text),
            ("protected", Kind::Flag),
            ("deceased", Kind::Flag),
        ],
    ),
    (
        "person_address",
        &[
            ("person_id", Kind::Text),
            ("source", Kind::Text),
            ("address_text", Kind::Text),
            ("street_key", Kind::Text),
            ("house_key", Kind::Text),
            ("building_key", Kind::Text),
            ("dwelling_key", Kind::Text),
            ("house_number", Kind::Int),
            ("valid_from", Kind::Time),
            ("valid_to", Kind::Time),
        ],
    ),
    ("relation", &[("person_id", Kind::Text), ("related_id", Kind::Text), ("code", Kind::Text), ("kind", Kind::Text), ("valid_from", Kind::Time), ("valid_to", Kind::Time)]),
    ("practitioner", &[("practitioner_ref", Kind::Text), ("person_id", Kind::Text), ("hpr", Kind::Text), ("family", Kind::Text), ("given", Kind::Text)]),
    (
        "employment",
        &[
            ("role_ref", Kind::Text),
            ("person_id", Kind::Text),
            ("hpr", Kind::Text),
            ("orgnr", Kind::Text),
            ("unit_id", Kind::Text),
            ("role_code", Kind::Text),
            ("valid_from", Kind::Time),
            ("valid_to", Kind::Time),
        ],
    ),
    (
        "care",
        &[
            ("care_ref", Kind::Text),
            ("kind", Kind::Text),
            ("patient_id", Kind::Text),
            ("orgnr", Kind::Text),
            ("unit_id", Kind::Text),
            ("valid_from", Kind::Time),
            ("valid_to", Kind::Time),
        ],
    ),
    ("care_participant", &[("care_ref", Kind::Text), ("person_id", Kind::Text), ("hpr", Kind::Text)]),
    (
        "duty",
        &[
            ("duty_ref", Kind::Text),
            ("person_id", Kind::Text),
            ("hpr", Kind::Text),
            ("orgnr", Kind::Text),
            ("unit_id", Kind::Text),
            ("valid_from", Kind::Time),
            ("valid_to", Kind::Time),
        ],
    ),
];

pub(crate) fn columns_of(table: &str) -> &'static [(&'static str, Kind)] {
    TABLES.iter().find(|(name, _)| *name == table).map(|(_, c)| *c).unwrap_or(&[])
}

pub(crate) fn schema_of(table: &str) -> Arc<Schema> {
    Arc::new(Schema::new(
        columns_of(table)
            .iter()
            .map(|(name, kind)| {
                let data_type = match kind {
                    Kind::Text => DataType::Utf8,
                    Kind::Int => DataType::Int64,
                    Kind::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    Kind::Flag => DataType::Boolean,
                };
                Field::new(*name, data_type, true)
            })
            .collect::<Vec<_>>(),
    ))
}

/// One cell of a row, in the table's column order.
#[derive(Debug, Clone)]
pub(crate) enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Time(Option<i64>),
    Flag(bool),
}

enum Column {
    Text(StringBuilder),
    Int(Int64Builder),
    Time(TimestampMicrosecondBuilder),
    Flag(BooleanBuilder),
}

/// Rows per record batch, and text bytes per batch: an Arrow string array holds at most
/// 2 GiB (i32 offsets), and one import of a 3 M-person register put 4.9 GB of resource
/// JSON in one column ("byte array offset overflow"). Batches also bound what the Parquet
/// writer buffers per row group.
const BATCH_ROWS: usize = 64 * 1024;
const BATCH_TEXT_BYTES: usize = 256 << 20;

/// Rows of one table, built column by column, in record batches of bounded size.
pub(crate) struct TableBuilder {
    pub name: &'static str,
    columns: Vec<Column>,
    pub rows: usize,
    /// Rows and text bytes in the batch being built.
    batch_rows: usize,
    batch_text: usize,
    done: Vec<RecordBatch>,
    /// A batch that could not be built or written: `finish` and `write_to` return it, so no
    /// row goes missing quietly.
    failed: Option<String>,
    /// Streaming: each full batch goes straight into this file instead of `done`.
    sink: Option<Sink>,
}

struct Sink {
    writer: parquet::arrow::ArrowWriter<std::fs::File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl TableBuilder {
    pub fn new(name: &'static str) -> Self {
        let columns = columns_of(name)
            .iter()
            .map(|(_, kind)| match kind {
                Kind::Text => Column::Text(StringBuilder::new()),
                Kind::Int => Column::Int(Int64Builder::new()),
                Kind::Time => Column::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
                Kind::Flag => Column::Flag(BooleanBuilder::new()),
            })
            .collect();
        TableBuilder { name, columns, rows: 0, batch_rows: 0, batch_text: 0, done: Vec::new(), failed: None, sink: None }
    }

    /// A builder that writes each full batch to `path` as it is built (via a temporary
    /// name), holding one batch at a time: how an import writes every table, so none is
    /// held whole (the resources table's JSON is the size of the export).
    pub fn streaming(name: &'static str, path: &Path) -> Result<Self, ContextError> {
        let tmp = path.with_extension("parquet.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| ContextError::io(&tmp, e))?;
        let writer =
            parquet::arrow::ArrowWriter::try_new(file, schema_of(name), Some(writer_properties())).map_err(|source| ContextError::Parquet { path: path.to_owned(), source })?;
        Ok(TableBuilder { sink: Some(Sink { writer, tmp, path: path.to_owned() }), ..TableBuilder::new(name) })
    }

    /// Writes a streaming builder's last batch, makes its file durable under its own name
    /// and returns its rows. A builder made with [`TableBuilder::new`] has no file (its
    /// batches are taken with `finish`), which is an error here.
    pub fn close(mut self) -> Result<usize, ContextError> {
        let Some(mut sink) = self.sink.take() else {
            return Err(ContextError::Corrupt { path: self.name.into(), reason: "an in-memory table has no file to close".into() });
        };
        let corrupt = |reason: String| ContextError::Corrupt { path: sink.path.clone(), reason };
        if self.batch_rows > 0 {
            let last = self.take_batch().map_err(|e| corrupt(e.to_string()))?;
            sink.writer.write(&last).map_err(|source| ContextError::Parquet { path: sink.path.clone(), source })?;
        }
        if let Some(e) = self.failed.take() {
            return Err(corrupt(e));
        }
        let file = sink.writer.into_inner().map_err(|source| ContextError::Parquet { path: sink.path.clone(), source })?;
        file.sync_all().map_err(|e| ContextError::io(&sink.tmp, e))?;
        std::fs::rename(&sink.tmp, &sink.path).map_err(|e| ContextError::io(&sink.path, e))?;
        Ok(self.rows)
    }

    /// Appends a row; the cells must follow [`TABLES`] for this table (checked in tests).
    pub fn push(&mut self, row: &[Cell<'_>]) {
        debug_assert_eq!(row.len(), self.columns.len(), "row width of {}", self.name);
        for (column, cell) in self.columns.iter_mut().zip(row) {
            match (column, cell) {
                (Column::Text(b), Cell::Text(v)) => {
                    self.batch_text += v.map_or(0, str::len);
                    b.append_option(*v)
                }
                (Column::Int(b), Cell::Int(v)) => b.append_option(*v),
                (Column::Time(b), Cell::Time(v)) => b.append_option(*v),
                (Column::Flag(b), Cell::Flag(v)) => b.append_value(*v),
                (Column::Text(b), _) => b.append_null(),
                (Column::Int(b), _) => b.append_null(),
                (Column::Time(b), _) => b.append_null(),
                (Column::Flag(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
        self.batch_rows += 1;
        if self.batch_rows >= BATCH_ROWS || self.batch_text >= BATCH_TEXT_BYTES {
            let result = self.take_batch().map_err(|e| e.to_string()).and_then(|batch| match self.sink.as_mut() {
                Some(sink) => sink.writer.write(&batch).map_err(|e| e.to_string()),
                None => {
                    self.done.push(batch);
                    Ok(())
                }
            });
            if let Err(e) = result {
                self.failed = self.failed.take().or(Some(e));
            }
        }
    }

    /// The table's record batches, in row order (one, possibly empty, at least).
    #[cfg(test)]
    pub fn finish(mut self) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
        if let Some(e) = self.failed.take() {
            return Err(arrow_schema::ArrowError::ComputeError(e));
        }
        if self.batch_rows > 0 || self.done.is_empty() {
            let last = self.take_batch()?;
            self.done.push(last);
        }
        Ok(self.done)
    }

    fn take_batch(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        self.batch_rows = 0;
        self.batch_text = 0;
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Column::Text(b) => {
                        // The next batch starts with this one's capacity, so a column of
                        // resource JSON (~20 MB a batch) is not grown by doubling each time
                        // (memmove and fresh pages were 12 % of the HSØ import by perf; its
                        // import took 114 s instead of 127 s, the same files). At most
                        // BATCH_TEXT_BYTES, so bounded like the batch itself.
                        let (rows, bytes) = (b.len(), b.values_slice().len());
                        Arc::new(std::mem::replace(b, StringBuilder::with_capacity(rows, bytes)).finish())
                    }
                    Column::Int(b) => Arc::new(b.finish()),
                    Column::Time(b) => Arc::new(b.finish()),
                    Column::Flag(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(schema_of(self.name), arrays)
    }
}

fn writer_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::default())).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_builds_an_empty_batch_with_its_schema() {
        for (name, columns) in TABLES {
            let batches = TableBuilder::new(name).finish().unwrap();
            assert_eq!(batches.len(), 1);
            assert_eq!(batches[0].num_columns(), columns.len(), "{name}");
            assert_eq!(batches[0].num_rows(), 0);
        }
    }

    #[test]
    fn a_table_larger_than_a_batch_is_built_in_bounded_batches() {
        let mut t = TableBuilder::new("resources");
        let json = "x".repeat(1000);
        let rows = BATCH_ROWS + 10;
        for i in 0..rows {
            let id = i.to_string();
            t.push(&[Cell::Text(Some("Patient")), Cell::Text(Some(&id)), Cell::Text(Some("h")), Cell::Text(Some(&json))]);
        }
        let batches = t.finish().unwrap();
        assert!(batches.len() >= 2, "split into batches");
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), rows, "no row lost or repeated");
        assert!(batches.iter().all(|b| b.num_rows() <= BATCH_ROWS));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resources.parquet");
        let mut t = TableBuilder::streaming("resources", &path).unwrap();
        for i in 0..rows {
            let id = i.to_string();
            t.push(&[Cell::Text(Some("Patient")), Cell::Text(Some(&id)), Cell::Text(Some("h")), Cell::Text(Some(&json))]);
        }
        assert_eq!(t.close().unwrap(), rows);
        assert!(TableBuilder::new("resources").close().is_err(), "an in-memory table has no file");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap().build().unwrap();
        assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), rows);
    }
}
