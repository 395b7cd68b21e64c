//! How each kind of event field is encoded, canonically and as an Arrow column.
//!
//! One trait, implemented for the five value types an event uses, so that the event's
//! field list (in `event.rs`) is the single place that decides order, names and types.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, TimeUnit};

use crate::canonical::{CanonicalError, Reader};
use crate::ColumnError;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)).unwrap_or_else(|| format!("{}µs", self.0))
    }
    /// Days since 1970-01-01 in UTC: the date partition a record belongs to.
    pub fn utc_day(self) -> i64 {
        self.0.div_euclid(MICROS_PER_DAY)
    }
    /// The `YYYY-MM-DD` of a day number from [`Timestamp::utc_day`].
    pub fn day_to_date(day: i64) -> String {
        Timestamp(day.saturating_mul(MICROS_PER_DAY)).utc_date()
    }
    /// The day number of a `YYYY-MM-DD` date.
    pub fn date_to_day(date: &str) -> Option<i64> {
        let midnight = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)?;
        Some(Timestamp(midnight.and_utc().timestamp_micros()).utc_day())
    }
    /// The UTC calendar date, as `YYYY-MM-DD`; partitions are cut by it.
    pub fn utc_date(self) -> String {
        chrono::DateTime::from_timestamp_micros(self.0).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "invalid-date".to_owned())
    }
    pub fn now() -> Self {
        Timestamp(chrono::Utc::now().timestamp_micros())
    }
}

/// The first 16 bytes of the BLAKE3 hash of the original message bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest16(pub [u8; 16]);

pub(crate) const TIMEZONE: &str = "UTC";

/// A value type that can be an event field.
pub trait FieldValue: Sized {
    const NULLABLE: bool;
    type Column<'a>: Copy;
    fn data_type() -> DataType;
    fn put(&self, out: &mut Vec<u8>);
    fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError>;
    fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef
    where
        Self: 'a;
    /// Downcasts and checks a column read from a file; required columns must have no nulls.
    fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError>;
    fn get(column: Self::Column<'_>, row: usize) -> Self;
    /// Writes the canonical bytes of one cell without building the value.
    fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>);
}

fn downcast<'a, T: 'static>(array: &'a ArrayRef, name: &'static str, nullable: bool, expected: &DataType) -> Result<&'a T, ColumnError> {
    let typed = array.as_any().downcast_ref::<T>().ok_or_else(|| ColumnError::Type { column: name, expected: expected.to_string(), found: array.data_type().to_string() })?;
    if !nullable && array.null_count() > 0 {
        return Err(ColumnError::UnexpectedNull { column: name, count: array.null_count() });
    }
    Ok(typed)
}

/// Sized for typical identifiers and codes, so building a segment's columns does not
/// grow each buffer a dozen times.
fn string_builder(rows: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * 24)
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl FieldValue for String {
    const NULLABLE: bool = false;
    type Column<'a> = &'a StringArray;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out)
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError> {
        r.string()
    }
    fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let mut builder = string_builder(values.size_hint().0);
        values.for_each(|v| builder.append_value(v));
        Arc::new(builder.finish())
    }
    fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError> {
        downcast(array, name, false, &DataType::Utf8)
    }
    fn get(column: Self::Column<'_>, row: usize) -> Self {
        column.value(row).to_owned()
    }
    fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>) {
        put_bytes(column.value(row).as_bytes(), out)
    }
}

impl FieldValue for Option<String> {
    const NULLABLE: bool = true;
    type Column<'a> = &'a StringArray;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_bytes(s.as_bytes(), out)
            }
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError> {
        if r.presence()? {
            Ok(Some(r.string()?))
        } else {
            Ok(None)
        }
    }
    fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let mut builder = string_builder(values.size_hint().0);
        values.for_each(|v| builder.append_option(v.as_deref()));
        Arc::new(builder.finish())
    }
    fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError> {
        downcast(array, name, true, &DataType::Utf8)
    }
    fn get(column: Self::Column<'_>, row: usize) -> Self {
        column.is_valid(row).then(|| column.value(row).to_owned())
    }
    fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>) {
        if column.is_valid(row) {
            out.push(1);
            put_bytes(column.value(row).as_bytes(), out)
        } else {
            out.push(0)
        }
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TIMEZONE.into()))
}

impl FieldValue for Timestamp {
    const NULLABLE: bool = false;
    type Column<'a> = &'a TimestampMicrosecondArray;
    fn data_type() -> DataType {
        timestamp_type()
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes())
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError> {
        Ok(Timestamp(r.i64()?))
    }
    fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from_iter_values(values.map(|v| v.0)).with_timezone(TIMEZONE))
    }
    fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError> {
        downcast(array, name, false, &timestamp_type())
    }
    fn get(column: Self::Column<'_>, row: usize) -> Self {
        Timestamp(column.value(row))
    }
    fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&column.value(row).to_le_bytes())
    }
}

macro_rules! optional_i64_field {
    ($ty:ty, $array:ty, $data_type:expr, $wrap:expr, $unwrap:expr) => {
        impl FieldValue for Option<$ty> {
            const NULLABLE: bool = true;
            type Column<'a> = &'a $array;
            fn data_type() -> DataType {
                $data_type
            }
            fn put(&self, out: &mut Vec<u8>) {
                match self {
                    None => out.push(0),
                    Some(v) => {
                        out.push(1);
                        out.extend_from_slice(&$unwrap(*v).to_le_bytes())
                    }
                }
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError> {
                if r.presence()? {
                    Ok(Some($wrap(r.i64()?)))
                } else {
                    Ok(None)
                }
            }
            fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
                let array: $array = values.map(|v| v.map($unwrap)).collect();
                Arc::new(array.with_data_type($data_type))
            }
            fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError> {
                downcast(array, name, true, &$data_type)
            }
            fn get(column: Self::Column<'_>, row: usize) -> Self {
                column.is_valid(row).then(|| $wrap(column.value(row)))
            }
            fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>) {
                if column.is_valid(row) {
                    out.push(1);
                    out.extend_from_slice(&column.value(row).to_le_bytes())
                } else {
                    out.push(0)
                }
            }
        }
    };
}

optional_i64_field!(i64, Int64Array, DataType::Int64, |v: i64| v, |v: i64| v);
optional_i64_field!(Timestamp, TimestampMicrosecondArray, timestamp_type(), Timestamp, |v: Timestamp| v.0);

impl FieldValue for Digest16 {
    const NULLABLE: bool = false;
    type Column<'a> = &'a FixedSizeBinaryArray;
    fn data_type() -> DataType {
        DataType::FixedSizeBinary(16)
    }
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0)
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CanonicalError> {
        Ok(Digest16(r.array::<16>()?))
    }
    fn build_array<'a>(values: impl Iterator<Item = &'a Self>) -> ArrayRef {
        let array = FixedSizeBinaryArray::try_from_iter(values.map(|v| v.0)).unwrap_or_else(|_| FixedSizeBinaryArray::new_null(16, 0)); // only fails for an empty iterator
        Arc::new(array)
    }
    fn column<'a>(array: &'a ArrayRef, name: &'static str) -> Result<Self::Column<'a>, ColumnError> {
        let column: &FixedSizeBinaryArray = downcast(array, name, false, &DataType::FixedSizeBinary(16))?;
        if column.value_length() != 16 {
            return Err(ColumnError::Type { column: name, expected: "FixedSizeBinary(16)".into(), found: array.data_type().to_string() });
        }
        Ok(column)
    }
    fn get(column: Self::Column<'_>, row: usize) -> Self {
        let mut out = [0u8; 16];
        out.copy_from_slice(column.value(row));
        Digest16(out)
    }
    fn put_cell(column: Self::Column<'_>, row: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(column.value(row))
    }
}
