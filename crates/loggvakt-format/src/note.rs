//! Keys and signed checkpoints, in the signed-note format of the Go checksum database
//! (golang.org/x/mod/sumdb/note) and the C2SP `tlog-checkpoint` layout, so an outsider can
//! check a checkpoint with existing tools. Specified in `docs/format.md` §Checkpoints.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

use crate::chain::Hash;
use crate::StoreError;

const ALG_ED25519: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

fn key_hash(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Splits `<name>+<hash>+<base64(0x01 ‖ 32 bytes)>` (the key bytes may contain '+').
fn key_fields(text: &str) -> Result<(&str, &str, [u8; 32]), &'static str> {
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("wrong number of '+' fields");
    };
    let raw = B64.decode(key).map_err(|_| "key is not base64")?;
    if raw.len() != 33 || raw[0] != ALG_ED25519 {
        return Err("not an Ed25519 key");
    }
    let bytes: [u8; 32] = raw[1..].try_into().map_err(|_| "key length")?;
    Ok((name, hash, bytes))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && name.chars().all(|c| c.is_ascii_graphic())
}

/// A private signing key: `PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>`.
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    hash: u32,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    pub fn generate(name: &str) -> Result<Self, StoreError> {
        if !valid_name(name) {
            return Err(StoreError::Key(format!("key name '{name}' must be printable ASCII without spaces or '+'")));
        }
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| StoreError::Key(format!("no randomness from the OS: {e}")))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let hash = key_hash(name, key.verifying_key().as_bytes());
        Ok(SigningKey { name: name.to_owned(), hash, key })
    }

    /// A key from a known seed: for test vectors only; real keys come from `generate`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        SigningKey { name: name.to_owned(), hash: key_hash(name, key.verifying_key().as_bytes()), key }
    }

    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Key(format!("not a loggvakt private key ({why}); expected PRIVATE+KEY+<name>+<hash>+<key>"));
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, hash, seed) = key_fields(rest).map_err(bad)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let expected = key_hash(name, key.verifying_key().as_bytes());
        if u32::from_str_radix(hash, 16).ok() != Some(expected) {
            return Err(bad("key hash does not match name and key"));
        }
        Ok(SigningKey { name: name.to_owned(), hash: expected, key })
    }

    pub fn to_text(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&self.key.to_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.hash, B64.encode(raw))
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), hash: self.hash, key: self.key.verifying_key() }
    }

    /// Signs `text` (which must end in a newline) and returns the whole signed note.
    pub fn sign_note(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut raw = self.hash.to_be_bytes().to_vec();
        raw.extend_from_slice(&signature.to_bytes());
        format!("{text}\n{SIGNATURE_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }
}

/// A public key: `<name>+<hash>+<base64(0x01 ‖ public key)>`; its id is `<name>+<hash>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    hash: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Key(format!("'{text}' is not a verifier key ({why}); expected <name>+<hash>+<key>"));
        let (name, hash, public) = key_fields(text).map_err(bad)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid curve point"))?;
        let expected = key_hash(name, &public);
        if u32::from_str_radix(hash, 16).ok() != Some(expected) {
            return Err(bad("key hash does not match name and key"));
        }
        Ok(VerifierKey { name: name.to_owned(), hash: expected, key })
    }

    pub fn to_text(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.hash, B64.encode(raw))
    }

    /// `<name>+<hash>`, the key id that signature lines name.
    pub fn id(&self) -> String {
        format!("{}+{:08x}", self.name, self.hash)
    }
}

/// Reads a trusted-keys file: one verifier key per line; `#` starts a comment.
pub fn parse_trusted_keys(text: &str) -> Result<Vec<VerifierKey>, StoreError> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(VerifierKey::parse).collect()
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub hash: u32,
    pub signature: [u8; 64],
}

/// Why a note's signatures do not make it trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// No signature line names a trusted key.
    NoTrustedSignature { signers: Vec<String> },
    /// A signature line names a trusted key, but the signature does not verify: forged or altered.
    BadSignature { key_id: String },
}

/// A checkpoint: after record `size`, the chain head was `head`. Signed as a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub head: Hash,
    pub epoch: u64,
    pub manifest: Option<Hash>,
    pub time: String,
}

impl Checkpoint {
    pub fn origin_for(store_id: &[u8; 16]) -> String {
        format!("loggvakt/{}", crate::chain::to_hex(store_id))
    }

    pub fn body(&self) -> String {
        let mut body = format!("{}\n{}\n{}\nepoch {}\n", self.origin, self.size, B64.encode(self.head), self.epoch);
        if let Some(m) = &self.manifest {
            body.push_str(&format!("manifest {}\n", crate::chain::to_hex(m)));
        }
        body.push_str(&format!("time {}\n", self.time));
        body
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        key.sign_note(&self.body())
    }

    /// Parses a signed checkpoint note without judging its signatures.
    pub fn parse_note(note: &str) -> Result<(Checkpoint, String, Vec<NoteSignature>), StoreError> {
        let bad = |why: String| StoreError::Checkpoint(why);
        let (text, sigs) = note.split_once("\n\n").ok_or_else(|| bad("no blank line between checkpoint and signatures".into()))?;
        let text = format!("{text}\n");
        let mut lines = text.lines();
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| bad("origin line missing".into()))?.to_owned();
        let size = lines.next().and_then(|l| l.parse::<u64>().ok()).ok_or_else(|| bad("size line is not a number".into()))?;
        let head_b64 = lines.next().ok_or_else(|| bad("head line missing".into()))?;
        let head: Hash = B64.decode(head_b64).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| bad(format!("head '{head_b64}' is not a base64 32-byte hash")))?;
        let mut cp = Checkpoint { origin, size, head, epoch: 0, manifest: None, time: String::new() };
        for line in lines {
            match line.split_once(' ') {
                Some(("epoch", v)) => cp.epoch = v.parse().map_err(|_| bad(format!("epoch '{v}' is not a number")))?,
                Some(("manifest", v)) => cp.manifest = Some(crate::chain::from_hex(v).ok_or_else(|| bad(format!("manifest hash '{v}' is not 64 hex digits")))?),
                Some(("time", v)) => cp.time = v.to_owned(),
                _ => {} // unknown extension lines are signed but ignored, as C2SP allows
            }
        }
        let mut signatures = Vec::new();
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| bad(format!("signature line '{line}' does not start with '— '")))?;
            let (name, sig) = rest.split_once(' ').ok_or_else(|| bad(format!("signature line '{line}' has no signature")))?;
            let raw = B64.decode(sig).map_err(|_| bad(format!("signature of '{name}' is not base64")))?;
            if raw.len() != 68 {
                return Err(bad(format!("signature of '{name}' is {} bytes, expected 4 + 64", raw.len())));
            }
            let hash = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let signature: [u8; 64] = raw[4..].try_into().map_err(|_| bad("signature length".into()))?;
            signatures.push(NoteSignature { name: name.to_owned(), hash, signature });
        }
        Ok((cp, text, signatures))
    }

    /// Parses a note and checks that a trusted key signed it. Returns the checkpoint and
    /// the id of the key that signed it.
    pub fn open(note: &str, trusted: &[VerifierKey]) -> Result<Result<(Checkpoint, String), SignatureProblem>, StoreError> {
        let (cp, text, signatures) = Self::parse_note(note)?;
        for sig in &signatures {
            if let Some(key) = trusted.iter().find(|k| k.name == sig.name && k.hash == sig.hash) {
                let signature = ed25519_dalek::Signature::from_bytes(&sig.signature);
                return Ok(match key.key.verify(text.as_bytes(), &signature) {
                    Ok(()) => Ok((cp, key.id())),
                    Err(_) => Err(SignatureProblem::BadSignature { key_id: key.id() }),
                });
            }
        }
        Ok(Err(SignatureProblem::NoTrustedSignature { signers: signatures.iter().map(|s| format!("{}+{:08x}", s.name, s.hash)).collect() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign() {
        for _ in 0..64 {
            // base64 keys often contain '+', the field separator; parsing must cope.
            let key = SigningKey::generate("k").expect("key");
            assert_eq!(SigningKey::parse(&key.to_text()).expect("private").verifier(), VerifierKey::parse(&key.verifier().to_text()).expect("public"));
        }
        let key = SigningKey::generate("test-key").expect("key");
        let again = SigningKey::parse(&key.to_text()).expect("parse private");
        let verifier = VerifierKey::parse(&again.verifier().to_text()).expect("parse public");
        let cp = Checkpoint { origin: "loggvakt/00".into(), size: 7, head: [9; 32], epoch: 2, manifest: Some([1; 32]), time: "2026-11-22T10:00:00Z".into() };
        let note = cp.sign(&key);
        let (opened, id) = Checkpoint::open(&note, std::slice::from_ref(&verifier)).expect("parse").expect("trusted");
        assert_eq!(opened, cp);
        assert_eq!(id, verifier.id());
        let forged = note.replace("\n7\n", "\n8\n");
        assert!(matches!(Checkpoint::open(&forged, &[verifier]), Ok(Err(SignatureProblem::BadSignature { .. }))));
    }
}
