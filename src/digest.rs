//! Hex digests (SHA-256) for trial ids, parameter checksums and data-order checksums.

use sha2::{Digest, Sha256};

/// Full lowercase hex of a SHA-256 over `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The first 16 hex digits of a finished hasher: short enough to read, long enough to compare.
pub fn short_hex(hasher: Sha256) -> String {
    hex(&hasher.finalize()[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
