//! Sealing records that leave the process: AES-256-GCM under a key derived from the host's seal
//! key (or the ticket master secret), with the previous key kept for opening across a rotation.

use parking_lot::RwLock;

use crate::crypto::{hkdf_sha256, open, seal, zeroize};

/// Sealed-record format version, the first byte of every value snicache writes to Redis.
const FORMAT: u8 = 1;
const SEAL_SALT: &[u8] = b"snicache redis seal key v1";

/// The record sealing keys: the current one seals and opens, the previous one only opens.
pub struct SealKeys {
    keys: RwLock<([u8; 32], Option<[u8; 32]>)>,
    /// True when the keys follow the ticket master secret (no key of the host's own).
    pub from_ticket_secret: bool,
}

impl Drop for SealKeys {
    fn drop(&mut self) {
        let mut k = self.keys.write();
        zeroize(&mut k.0);
        if let Some(p) = &mut k.1 {
            zeroize(p);
        }
    }
}

impl SealKeys {
    /// Keys derived (HKDF-SHA256) from `material`: the host's seal key, or the ticket master
    /// secret, so servers given the same material open each other's records.
    pub fn new(material: &[u8], from_ticket_secret: bool) -> SealKeys {
        SealKeys {
            keys: RwLock::new((derive(material), None)),
            from_ticket_secret,
        }
    }

    /// Seals with a key derived from `material` from now on; the current key keeps opening.
    pub fn rotate(&self, material: &[u8]) {
        let mut k = self.keys.write();
        let old = std::mem::replace(&mut k.0, derive(material));
        if let Some(mut p) = k.1.replace(old) {
            zeroize(&mut p);
        }
    }

    pub(super) fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend_from_slice(&seal(&self.keys.read().0, aad, plain));
        out
    }

    pub(super) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&format, body) = sealed.split_first()?;
        if format != FORMAT {
            return None;
        }
        let k = self.keys.read();
        open(&k.0, aad, body).or_else(|| k.1.as_ref().and_then(|p| open(p, aad, body)))
    }
}

fn derive(material: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    hkdf_sha256(material, SEAL_SALT, b"records", &mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_keys_rotate_and_keep_the_previous_for_opening() {
        let k = SealKeys::new(&[1; 32], false);
        let old = k.seal(b"aad", b"record");
        k.rotate(&[2; 32]);
        let new = k.seal(b"aad", b"record");
        assert_eq!(k.open(b"aad", &old).as_deref(), Some(&b"record"[..]));
        assert_eq!(k.open(b"aad", &new).as_deref(), Some(&b"record"[..]));
        assert_eq!(k.open(b"other", &new), None);
        k.rotate(&[3; 32]);
        assert_eq!(k.open(b"aad", &old), None, "two rotations ago");
        assert!(k.open(b"aad", &new).is_some());
    }
}
