//! The canonical byte encoding of an access event (specified in `docs/format.md`).
//!
//! It is a function of the mapped event alone, so the JSON key order, whitespace and
//! number spelling of the original message never change it. Layout: one version byte,
//! then every canonical field in the order of [`crate::FIELDS`] (all but the last, the
//! source digest, which the *record* encoding appends after the canonical bytes):
//! required text = u32 LE length + UTF-8; optional values = 0x00 (absent) or 0x01 + value;
//! timestamps and integers = i64 LE; the digest = its 16 bytes.

use thiserror::Error;

/// The version byte that starts every canonical encoding.
pub const CANONICAL_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CanonicalError {
    #[error("canonical record is empty")]
    Empty,
    #[error("canonical version {0} is not supported (this build reads version {CANONICAL_VERSION})")]
    Version(u8),
    #[error("canonical record ends inside field '{field}' (offset {offset})")]
    Truncated { field: &'static str, offset: usize },
    #[error("field '{field}' at offset {offset}: presence byte {byte:#04x} is neither 0x00 nor 0x01")]
    Presence { field: &'static str, offset: usize, byte: u8 },
    #[error("field '{field}' at offset {offset} is not UTF-8")]
    Utf8 { field: &'static str, offset: usize },
    #[error("{extra} bytes follow the last field")]
    Trailing { extra: usize },
}

/// A cursor over canonical bytes that knows which field it is reading, for error messages.
pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    field: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self, CanonicalError> {
        match bytes.first() {
            None => Err(CanonicalError::Empty),
            Some(&CANONICAL_VERSION) => Ok(Reader { bytes, offset: 1, field: "version" }),
            Some(&other) => Err(CanonicalError::Version(other)),
        }
    }
    pub(crate) fn enter(&mut self, field: &'static str) {
        self.field = field;
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], CanonicalError> {
        let end = self.offset.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(CanonicalError::Truncated { field: self.field, offset: self.offset })?;
        let out = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(out)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CanonicalError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }
    pub fn i64(&mut self) -> Result<i64, CanonicalError> {
        Ok(i64::from_le_bytes(self.array::<8>()?))
    }
    pub fn presence(&mut self) -> Result<bool, CanonicalError> {
        let offset = self.offset;
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(CanonicalError::Presence { field: self.field, offset, byte }),
        }
    }
    pub fn string(&mut self) -> Result<String, CanonicalError> {
        let len = u32::from_le_bytes(self.array::<4>()?) as usize;
        let offset = self.offset;
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| CanonicalError::Utf8 { field: self.field, offset })
    }
    pub(crate) fn finish(self) -> Result<(), CanonicalError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            extra => Err(CanonicalError::Trailing { extra }),
        }
    }
}
