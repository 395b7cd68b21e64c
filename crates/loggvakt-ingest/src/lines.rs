//! Cuts an input stream into chunks of whole lines, so chunks can be mapped in parallel
//! while lines keep their numbers, and so one enormous line cannot exhaust memory.

use std::io::Read;

/// A line longer than this is not buffered whole: its first [`KEPT_PREFIX`] bytes are
/// quarantined with a note of its length and offset.
pub const HARD_LINE_CAP: usize = 256 << 20;
pub const KEPT_PREFIX: usize = 1 << 20;

pub enum Piece {
    /// Whole lines; `first_line` is the 1-based number of the first.
    Lines { data: Vec<u8>, first_line: u64 },
    /// A line over [`HARD_LINE_CAP`].
    Oversized { line: u64, offset: u64, length: u64, prefix: Vec<u8> },
}

pub struct LineChunker<R> {
    reader: R,
    carry: Vec<u8>,
    next_line: u64,
    offset: u64,
    eof: bool,
    target: usize,
}

impl<R: Read> LineChunker<R> {
    pub fn new(reader: R, target: usize) -> Self {
        LineChunker { reader, carry: Vec::new(), next_line: 1, offset: 0, eof: false, target: target.max(1024) }
    }

    fn fill(&mut self, want: usize) -> std::io::Result<usize> {
        let start = self.carry.len();
        self.carry.resize(start + want, 0);
        let mut got = 0;
        while got < want {
            match self.reader.read(&mut self.carry[start + got..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.carry.truncate(start + got);
                    return Err(e);
                }
            }
        }
        self.carry.truncate(start + got);
        Ok(got)
    }

    pub fn next_piece(&mut self) -> std::io::Result<Option<Piece>> {
        loop {
            if let Some(pos) = memchr::memrchr(b'\n', &self.carry) {
                if self.carry.len() >= self.target || self.eof {
                    return Ok(Some(self.take_lines(pos + 1)));
                }
            }
            if self.eof {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                let len = self.carry.len();
                return Ok(Some(self.take_lines(len)));
            }
            if self.carry.len() > HARD_LINE_CAP && memchr::memchr(b'\n', &self.carry).is_none() {
                return self.oversized().map(Some);
            }
            let want = self.target.max(self.carry.len() / 2);
            self.fill(want)?;
        }
    }

    fn take_lines(&mut self, end: usize) -> Piece {
        let rest = self.carry.split_off(end);
        let data = std::mem::replace(&mut self.carry, rest);
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &data).count() as u64 + u64::from(!data.ends_with(b"\n"));
        self.offset += data.len() as u64;
        Piece::Lines { data, first_line }
    }

    fn oversized(&mut self) -> std::io::Result<Piece> {
        let prefix = self.carry[..KEPT_PREFIX].to_vec();
        let offset = self.offset;
        let mut length = 0u64;
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.carry) {
                length += pos as u64;
                self.carry.drain(..=pos);
                break;
            }
            length += self.carry.len() as u64;
            self.carry.clear();
            if self.eof || self.fill(self.target)? == 0 {
                break;
            }
        }
        let line = self.next_line;
        self.next_line += 1;
        self.offset += length + 1;
        Ok(Piece::Oversized { line, offset, length, prefix })
    }
}
