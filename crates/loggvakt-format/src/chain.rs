//! The hash chain (specified in `docs/format.md` §Hashes).
//!
//! `leaf(n) = BLAKE3(0x00 ‖ record(n))`, where `record` is the canonical event encoding
//! followed by the 16-byte source digest,
//! `head(n) = BLAKE3(0x01 ‖ head(n-1) ‖ u64le(n) ‖ leaf(n))`,
//! `head(0) = BLAKE3(0x02 ‖ "loggvakt genesis" ‖ store_id)`.
//! The leaf is the costly part and needs nothing but its own record (not even its
//! sequence number), so writers and verifiers compute leaves in parallel; the chain step
//! hashes 73 bytes and is the only sequential work.

pub type Hash = [u8; 32];

/// How many bytes of each record's chain head are stored beside it, to point at the first
/// broken record. Tags locate; they do not prove: the verifier recomputes the full 32-byte
/// head and compares it with the signed checkpoint, so a tag that matches by chance
/// (probability 2^-32) only moves the reported location to the next record.
pub const TAG_LEN: usize = 4;
pub type Tag = [u8; TAG_LEN];

pub fn genesis(store_id: &[u8; 16]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0x02]);
    h.update(b"loggvakt genesis");
    h.update(store_id);
    *h.finalize().as_bytes()
}

pub fn leaf(record: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(record);
    *h.finalize().as_bytes()
}

pub fn next_head(prev: &Hash, seq: u64, leaf: &Hash) -> Hash {
    let mut buf = [0u8; 73];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(prev);
    buf[33..41].copy_from_slice(&seq.to_le_bytes());
    buf[41..].copy_from_slice(leaf);
    *blake3::hash(&buf).as_bytes()
}

pub fn tag(head: &Hash) -> Tag {
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&head[..TAG_LEN]);
    t
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
