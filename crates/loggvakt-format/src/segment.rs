//! Immutable Parquet segments (specified in `docs/format.md` §Segments).
//!
//! One file per (tenant, UTC date) per epoch, under Hive-style directories
//! `data/tenant=<orgnr>/date=<YYYY-MM-DD>/seg-<epoch>-<index>.parquet`, rows sorted by
//! (patient, time, seq) so that page statistics prune patient and time look-ups.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeBinaryArray, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use loggvakt_model::AccessEvent;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::ChunkReader;
use parquet::schema::types::ColumnPath;

use crate::chain::{Tag, TAG_LEN};
use crate::StoreError;

pub const SEQ_COLUMN: &str = "seq";
pub const TAG_COLUMN: &str = "chain_tag";

pub const META_FORMAT: &str = "loggvakt.format";
pub const META_STORE: &str = "loggvakt.store_id";
pub const META_EPOCH: &str = "loggvakt.epoch";
pub const META_PATH: &str = "loggvakt.path";
pub const FORMAT_VERSION: &str = "1";

/// `seq`, the event fields in canonical order, then `chain_tag`.
pub fn segment_schema() -> SchemaRef {
    let mut fields = vec![Field::new(SEQ_COLUMN, DataType::Int64, false)];
    fields.extend(AccessEvent::arrow_fields());
    fields.push(Field::new(TAG_COLUMN, DataType::FixedSizeBinary(TAG_LEN as i32), false));
    Arc::new(Schema::new(fields))
}

/// A record waiting to be sealed into a segment.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub seq: u64,
    /// Shared, so a reader (the daemon's searches) can hold unsealed events without copies.
    pub event: Arc<AccessEvent>,
    pub tag: Tag,
}

/// Relative path of a segment inside the store.
pub fn segment_rel_path(tenant: &str, date: &str, epoch: u64, index: usize) -> String {
    format!("data/tenant={tenant}/date={date}/seg-{epoch:08}-{index:04}.parquet")
}

/// The tenant and date a segment's path names (`data/tenant=<orgnr>/date=<YYYY-MM-DD>/…`),
/// each `None` when the path lacks it.
pub fn partition_of(rel: &str) -> (Option<&str>, Option<&str>) {
    let mut tenant = None;
    let mut date = None;
    for part in rel.split('/') {
        if let Some(v) = part.strip_prefix("tenant=") {
            tenant = Some(v);
        } else if let Some(v) = part.strip_prefix("date=") {
            date = Some(v);
        }
    }
    (tenant, date)
}

/// Parses `seg-<epoch>-<index>.parquet` to its epoch.
pub fn epoch_of_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?.strip_suffix(".parquet")?.split('-').next()?.parse().ok()
}

/// The writer settings of every segment (also used by the benchmark's plain-Parquet baseline).
pub fn writer_properties(kv: Vec<KeyValue>) -> Result<WriterProperties, StoreError> {
    let zstd = ZstdLevel::try_new(3).map_err(|e| StoreError::Parquet(e.to_string()))?;
    let random = |p: &str| ColumnPath::from(p);
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("loggvakt {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(kv))
        // Hashes and tags are random: dictionaries and compression only cost time on them.
        .set_column_dictionary_enabled(random(TAG_COLUMN), false)
        .set_column_compression(random(TAG_COLUMN), Compression::UNCOMPRESSED)
        .set_column_statistics_enabled(random(TAG_COLUMN), EnabledStatistics::None)
        .set_column_dictionary_enabled(random("source_digest"), false)
        .set_column_compression(random("source_digest"), Compression::UNCOMPRESSED)
        .set_column_statistics_enabled(random("source_digest"), EnabledStatistics::None)
        .set_column_dictionary_enabled(random(SEQ_COLUMN), false)
        .set_column_encoding(random(SEQ_COLUMN), Encoding::DELTA_BINARY_PACKED)
        // Event ids are unique (often UUIDs): no dictionary, and lengths kept apart from
        // the bytes so the compressor sees only the id characters.
        .set_column_dictionary_enabled(random("event_id"), false)
        .set_column_encoding(random("event_id"), Encoding::DELTA_LENGTH_BYTE_ARRAY)
        // Times are near-unique but close to their neighbours: deltas pack them far
        // tighter than a dictionary.
        .set_column_dictionary_enabled(random("occurred_at"), false)
        .set_column_encoding(random("occurred_at"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(random("recorded_at"), false)
        .set_column_encoding(random("recorded_at"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(random("received_at"), false)
        .set_column_encoding(random("received_at"), Encoding::DELTA_BINARY_PACKED)
        .build())
}

/// Builds the record batch of a segment, in the given row order.
pub fn segment_batch(rows: &[&SealedRecord]) -> Result<RecordBatch, StoreError> {
    let events: Vec<&AccessEvent> = rows.iter().map(|r| r.event.as_ref()).collect();
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.seq as i64)))];
    columns.extend(AccessEvent::columns(&events));
    let tags = FixedSizeBinaryArray::try_from_iter(rows.iter().map(|r| r.tag)).map_err(|e| StoreError::Parquet(e.to_string()))?;
    columns.push(Arc::new(tags));
    RecordBatch::try_new(segment_schema(), columns).map_err(|e| StoreError::Parquet(e.to_string()))
}

/// Hashes everything written through it, so the file hash costs no second read, and
/// flushes it to disk every few megabytes: one fsync of a whole segment (tens of megabytes)
/// made the write-ahead journal's fsyncs, and so every acknowledgement, queue behind it.
struct HashingWriter {
    file: File,
    hasher: blake3::Hasher,
    unsynced: usize,
}

const SYNC_EVERY_BYTES: usize = 4 << 20;

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.unsynced += n;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Writes one segment durably (temporary name, fsync, rename) and returns the BLAKE3 of its bytes.
pub fn write_segment(store: &Path, rel_path: &str, store_id_hex: &str, epoch: u64, rows: &[&SealedRecord]) -> Result<[u8; 32], StoreError> {
    let final_path = store.join(rel_path);
    if let Some(parent) = final_path.parent() {
        crate::fsutil::create_dir_durable(parent)?;
    }
    let tmp = final_path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    let kv = vec![
        KeyValue::new(META_FORMAT.to_owned(), FORMAT_VERSION.to_owned()),
        KeyValue::new(META_STORE.to_owned(), store_id_hex.to_owned()),
        KeyValue::new(META_EPOCH.to_owned(), epoch.to_string()),
        KeyValue::new(META_PATH.to_owned(), rel_path.to_owned()),
    ];
    let sink = HashingWriter { file, hasher: blake3::Hasher::new(), unsynced: 0 };
    let mut writer = ArrowWriter::try_new(sink, segment_schema(), Some(writer_properties(kv)?)).map_err(|e| StoreError::Parquet(e.to_string()))?;
    for chunk in rows.chunks(64 * 1024) {
        writer.write(&segment_batch(chunk)?).map_err(|e| StoreError::Parquet(e.to_string()))?;
    }
    let sink = writer.into_inner().map_err(|e| StoreError::Parquet(e.to_string()))?;
    sink.file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    let hash = *sink.hasher.finalize().as_bytes();
    std::fs::rename(&tmp, &final_path).map_err(|e| StoreError::io(&final_path, e))?;
    Ok(hash)
}

/// An open segment: its key-value metadata and a batch reader.
pub struct SegmentFile {
    pub path: PathBuf,
    pub rows: u64,
    pub metadata: Vec<(String, String)>,
    pub reader: ParquetRecordBatchReader,
}

impl SegmentFile {
    pub fn open(path: &Path, batch_size: usize) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        Self::from_reader(path, file, batch_size)
    }

    /// Reads a segment already in memory (the verifier hashes the same bytes).
    pub fn from_bytes(path: &Path, bytes: bytes::Bytes, batch_size: usize) -> Result<Self, StoreError> {
        Self::from_reader(path, bytes, batch_size)
    }

    fn from_reader<R: ChunkReader + 'static>(path: &Path, file: R, batch_size: usize) -> Result<Self, StoreError> {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| StoreError::Corrupt { path: path.to_owned(), detail: format!("not a readable Parquet file: {e}") })?;
        let file_meta = builder.metadata().file_metadata();
        let rows = file_meta.num_rows() as u64;
        let metadata = file_meta.key_value_metadata().map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect()).unwrap_or_default();
        let reader = builder.with_batch_size(batch_size).build().map_err(|e| StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() })?;
        Ok(SegmentFile { path: path.to_owned(), rows, metadata, reader })
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}
