//! RFC 6587 framing of syslog over a byte stream (TCP, and TLS per RFC 5425): octet
//! counting (`LEN SP MSG`), or a message per line (non-transparent framing, which
//! `logger --tcp` and many older senders use). Each frame says which it is by its first
//! byte: a digit starts octet counting, `<` a line.

/// Cuts frames out of a growing buffer, with a limit on the size of one frame.
#[derive(Debug)]
pub struct Framer {
    max_frame: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("syslog frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("syslog framing: {0}")]
    Invalid(String),
}

impl Framer {
    pub fn new(max_frame: usize) -> Self {
        Framer { max_frame }
    }

    /// The next complete frame in `buf` as `(start, end, consumed)`: the message is
    /// `buf[start..end]` and `consumed` bytes may be dropped. `Ok(None)` means more bytes
    /// are needed. An error means the stream cannot be resynchronised.
    pub fn next_frame(&self, buf: &[u8]) -> Result<Option<(usize, usize, usize)>, FrameError> {
        // Blank lines between line-framed messages carry nothing.
        let skip = buf.iter().take_while(|b| matches!(b, b'\n' | b'\r' | 0)).count();
        let buf_rest = &buf[skip..];
        match buf_rest.first() {
            None => Ok(None),
            Some(b'1'..=b'9') => {
                let digits = buf_rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits > 10 {
                    return Err(FrameError::Invalid(format!("octet count of {digits} digits")));
                }
                match buf_rest.get(digits) {
                    None => Ok(None),
                    Some(b' ') => {
                        let len: usize = std::str::from_utf8(&buf_rest[..digits]).ok().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
                        if len > self.max_frame {
                            return Err(FrameError::TooLarge { len, max: self.max_frame });
                        }
                        let start = skip + digits + 1;
                        if buf.len() < start + len {
                            return Ok(None);
                        }
                        Ok(Some((start, start + len, start + len)))
                    }
                    Some(b) => Err(FrameError::Invalid(format!("octet count followed by '{}' instead of a space", (*b as char).escape_default()))),
                }
            }
            Some(b'<') => match memchr_newline(buf_rest) {
                Some(end) if end > self.max_frame => Err(FrameError::TooLarge { len: end, max: self.max_frame }),
                Some(end) => {
                    let trimmed = if end > 0 && buf_rest[end - 1] == b'\r' { end - 1 } else { end };
                    Ok(Some((skip, skip + trimmed, skip + end + 1)))
                }
                None if buf_rest.len() > self.max_frame => Err(FrameError::TooLarge { len: buf_rest.len(), max: self.max_frame }),
                None => Ok(None),
            },
            Some(b) => Err(FrameError::Invalid(format!("a frame starts with '{}'; expected an octet count or '<'", (*b as char).escape_default()))),
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(mut input: &[u8]) -> Vec<Vec<u8>> {
        let framer = Framer::new(100);
        let mut out = vec![];
        while let Some((s, e, used)) = framer.next_frame(input).unwrap() {
            out.push(input[s..e].to_vec());
            input = &input[used..];
        }
        out
    }

    #[test]
    fn both_framings_and_partial_frames() {
        assert_eq!(frames(b"5 <1>1 3 abc"), vec![b"<1>1 ".to_vec(), b"abc".to_vec()]);
        assert_eq!(frames(b"<1>1 a\r\n\n<2>1 b\n<3>1 partial"), vec![b"<1>1 a".to_vec(), b"<2>1 b".to_vec()]);
        assert_eq!(frames(b"12 <1>1 short"), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn limits_and_garbage() {
        let framer = Framer::new(10);
        assert_eq!(framer.next_frame(b"11 "), Err(FrameError::TooLarge { len: 11, max: 10 }));
        assert!(matches!(framer.next_frame(b"<1>1 aaaaaaaaaaaaa"), Err(FrameError::TooLarge { .. })));
        assert!(matches!(framer.next_frame(b"GET / HTTP/1.1"), Err(FrameError::Invalid(_))));
        assert!(matches!(framer.next_frame(b"12x"), Err(FrameError::Invalid(_))));
    }
}
