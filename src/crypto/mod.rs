//! snicache's own cryptography, on BoringSSL through `boring` (linked into the cdylib with its
//! symbols hidden; the host's SSL library is never used for these): HKDF for key derivation,
//! AES-256-GCM for sealing, and the ticket key manager.

pub mod ticket_keys;

use boring::symm::{decrypt_aead, encrypt_aead, Cipher};

/// Overwrites secret bytes in a way the optimizer keeps.
pub fn zeroize(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: b is a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// HKDF-SHA256 (RFC 5869) into `out`.
pub fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    // SAFETY: every pointer/length pair describes a live slice; EVP_sha256 is a static table.
    let ok = unsafe {
        boring_sys::HKDF(
            out.as_mut_ptr(),
            out.len(),
            boring_sys::EVP_sha256(),
            secret.as_ptr(),
            secret.len(),
            salt.as_ptr(),
            salt.len(),
            info.as_ptr(),
            info.len(),
        )
    };
    assert_eq!(ok, 1, "HKDF-SHA256 cannot fail for outputs this short");
}

/// Fills `buf` from BoringSSL's CSPRNG.
pub fn random(buf: &mut [u8]) {
    boring::rand::rand_bytes(buf).expect("RAND_bytes does not fail");
}

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// AES-256-GCM: returns nonce || ciphertext || tag, with a fresh random nonce.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce);
    let mut tag = [0u8; TAG_LEN];
    let body = encrypt_aead(
        Cipher::aes_256_gcm(),
        key,
        Some(&nonce),
        aad,
        plain,
        &mut tag,
    )
    .expect("AES-256-GCM with a 32-byte key and 12-byte nonce");
    let mut out = Vec::with_capacity(NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

/// Opens what `seal` made; `None` when it is truncated, forged or bound to other `aad`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad, body, tag).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &salt, &info, &mut okm);
        assert_eq!(
            okm[..8],
            [0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a],
            "RFC 5869 A.1 OKM prefix"
        );
    }

    #[test]
    fn sealed_data_opens_only_with_its_key_and_aad() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"a.test", b"secret");
        assert_eq!(
            open(&key, b"a.test", &sealed).as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(open(&key, b"b.test", &sealed), None);
        assert_eq!(open(&[8u8; 32], b"a.test", &sealed), None);
        let mut bad = sealed.clone();
        bad[NONCE_LEN] ^= 1;
        assert_eq!(open(&key, b"a.test", &bad), None);
        assert_eq!(open(&key, b"a.test", &sealed[..sealed.len() - 1]), None);
        assert_eq!(open(&key, b"a.test", &[]), None);
    }
}
