//! Session ticket keys, one family per virtual host (RFC 5077 §4, RFC 8446 §4.6.1, R8, R10).
//!
//! Keys are derived with HKDF-SHA256 from a master secret, the vhost's name and a time epoch:
//! a ticket sealed for one vhost never opens on another, and servers sharing the secret derive
//! the same keys with no coordination. A key encrypts during its epoch (`rotation` seconds) and
//! still decrypts for `lifetime` more seconds (the longest session lifetime, so a ticket lives as
//! long as a stored session whatever the rotation). A key's name starts with its epoch, so
//! opening a ticket derives at most one key per secret. A new master secret can be installed at
//! run time; the previous one keeps decrypting through the same window. Decrypt-only secrets
//! (nginx's second and later `ssl_session_ticket_key` files) open tickets of any epoch still in
//! the window. Key bytes are zeroized when dropped.

use std::sync::Arc;

use parking_lot::RwLock;

use super::{hkdf_sha256, random, zeroize};

/// Length of a key name, as OpenSSL's ticket key callback expects.
pub const NAME_LEN: usize = 16;
const SALT: &[u8] = b"snicache ticket keys v1";
/// Bytes of a key name holding the key's epoch (big-endian); the rest is derived.
const EPOCH_LEN: usize = 8;
/// Master secret lengths: 32 to 80 bytes (nginx's ticket key files hold 48 or 80).
const SECRET_LEN: std::ops::RangeInclusive<usize> = 32..=80;
/// Derived keys kept per vhost; older ones are derived again when a ticket names them.
const CACHED_KEYS: usize = 8;
/// Decrypt-only secrets at most.
pub(crate) const MAX_DECRYPT_ONLY: usize = 8;

/// One derived key: a public name and the secret halves (AES-256 and HMAC-SHA256 for OpenSSL's
/// ticket format; the AES half alone seals BoringSSL tickets with AES-256-GCM).
pub struct TicketKey {
    pub name: [u8; NAME_LEN],
    pub aes: [u8; 32],
    pub hmac: [u8; 32],
    generation: u64,
    epoch: u64,
}

impl Drop for TicketKey {
    fn drop(&mut self) {
        zeroize(&mut self.aes);
        zeroize(&mut self.hmac);
    }
}

struct Secret {
    bytes: Vec<u8>,
    generation: u64,
    /// When it stopped encrypting (previous secret only).
    retired_at: u64,
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize(&mut self.bytes);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// Master secrets are 32 to 80 bytes.
    SecretLength,
    /// `rotation` must be 1 s to 7 days and `lifetime` 1 s to 24 h.
    Window,
    /// More than `MAX_DECRYPT_ONLY` decrypt-only secrets.
    TooMany,
}

struct Secrets {
    current: Arc<Secret>,
    previous: Option<Arc<Secret>>,
    /// Never encrypt, never retire.
    decrypt_only: Vec<Arc<Secret>>,
}

pub struct TicketKeys {
    rotation: u64,
    lifetime: u64,
    secrets: RwLock<Secrets>,
    /// Derived keys by vhost index, a handful each.
    cache: Box<[RwLock<Vec<Arc<TicketKey>>>]>,
}

const MAX_ROTATION: u32 = 7 * 24 * 3600;
const MAX_LIFETIME: u32 = 24 * 3600;

impl TicketKeys {
    /// `secret` `None` draws a random one (tickets then open only in this process).
    pub fn new(
        secret: Option<&[u8]>,
        rotation: u32,
        lifetime: u32,
        vhosts: usize,
    ) -> Result<TicketKeys, KeyError> {
        if rotation == 0 || rotation > MAX_ROTATION || lifetime == 0 || lifetime > MAX_LIFETIME {
            return Err(KeyError::Window);
        }
        let bytes = match secret {
            Some(s) if !SECRET_LEN.contains(&s.len()) => return Err(KeyError::SecretLength),
            Some(s) => s.to_vec(),
            None => {
                let mut b = vec![0u8; 32];
                random(&mut b);
                b
            }
        };
        Ok(TicketKeys {
            rotation: u64::from(rotation),
            lifetime: u64::from(lifetime),
            secrets: RwLock::new(Secrets {
                current: Arc::new(Secret {
                    bytes,
                    generation: 0,
                    retired_at: 0,
                }),
                previous: None,
                decrypt_only: Vec::new(),
            }),
            cache: (0..vhosts.max(1))
                .map(|_| RwLock::new(Vec::new()))
                .collect(),
        })
    }

    /// Seconds a ticket stays valid.
    pub fn lifetime(&self) -> u32 {
        self.lifetime as u32
    }

    /// Adds a secret that never encrypts but opens tickets of its keys while they are in the
    /// window (each such ticket is renewed under the current secret).
    pub fn add_decrypt_only(&self, secret: &[u8]) -> Result<(), KeyError> {
        if !SECRET_LEN.contains(&secret.len()) {
            return Err(KeyError::SecretLength);
        }
        let mut s = self.secrets.write();
        if s.decrypt_only.len() >= MAX_DECRYPT_ONLY {
            return Err(KeyError::TooMany);
        }
        let generation = u64::MAX - s.decrypt_only.len() as u64;
        s.decrypt_only.push(Arc::new(Secret {
            bytes: secret.to_vec(),
            generation,
            retired_at: 0,
        }));
        Ok(())
    }

    /// Installs a new master secret; the current one only decrypts from now on, for one more
    /// rotation plus a ticket lifetime.
    pub fn rotate_secret(&self, secret: &[u8], now: u64) -> Result<(), KeyError> {
        if !SECRET_LEN.contains(&secret.len()) {
            return Err(KeyError::SecretLength);
        }
        let mut s = self.secrets.write();
        let generation = s.current.generation + 1;
        let retired = Secret {
            bytes: s.current.bytes.clone(),
            generation: s.current.generation,
            retired_at: now,
        };
        s.previous = Some(Arc::new(retired));
        s.current = Arc::new(Secret {
            bytes: secret.to_vec(),
            generation,
            retired_at: 0,
        });
        Ok(())
    }

    fn epoch(&self, now: u64) -> u64 {
        now / self.rotation
    }

    /// True while a key of `epoch` may still decrypt at `now`.
    fn decrypts(&self, epoch: u64, now: u64) -> bool {
        (epoch + 1) * self.rotation + self.lifetime > now
    }

    fn derive(secret: &Secret, vhost_name: &str, epoch: u64) -> TicketKey {
        let mut info = Vec::with_capacity(vhost_name.len() + 9);
        info.extend_from_slice(vhost_name.as_bytes());
        info.push(0);
        info.extend_from_slice(&epoch.to_be_bytes());
        let mut okm = [0u8; NAME_LEN + 64];
        hkdf_sha256(&secret.bytes, SALT, &info, &mut okm);
        let mut key = TicketKey {
            name: [0; NAME_LEN],
            aes: [0; 32],
            hmac: [0; 32],
            generation: secret.generation,
            epoch,
        };
        key.name[..EPOCH_LEN].copy_from_slice(&epoch.to_be_bytes());
        key.name[EPOCH_LEN..].copy_from_slice(&okm[..NAME_LEN - EPOCH_LEN]);
        key.aes.copy_from_slice(&okm[NAME_LEN..NAME_LEN + 32]);
        key.hmac.copy_from_slice(&okm[NAME_LEN + 32..]);
        zeroize(&mut okm);
        key
    }

    /// The key of (secret, epoch) for a vhost, derived once and cached.
    fn key(
        &self,
        vhost: u32,
        vhost_name: &str,
        secret: &Secret,
        epoch: u64,
        now: u64,
    ) -> Arc<TicketKey> {
        let slot = &self.cache[(vhost as usize).min(self.cache.len() - 1)];
        if let Some(k) = slot
            .read()
            .iter()
            .find(|k| k.generation == secret.generation && k.epoch == epoch)
        {
            return k.clone();
        }
        let key = Arc::new(Self::derive(secret, vhost_name, epoch));
        let mut keys = slot.write();
        keys.retain(|k| self.decrypts(k.epoch, now));
        if keys.len() >= CACHED_KEYS {
            // Keep the newest epochs: they open most tickets and encrypt.
            keys.sort_unstable_by_key(|k| std::cmp::Reverse(k.epoch));
            keys.truncate(CACHED_KEYS - 1);
        }
        keys.push(key.clone());
        key
    }

    /// The key that seals new tickets for this vhost now.
    pub fn encrypting(&self, vhost: u32, vhost_name: &str, now: u64) -> Arc<TicketKey> {
        let current = self.secrets.read().current.clone();
        self.key(vhost, vhost_name, &current, self.epoch(now), now)
    }

    /// The key named `name` if it may still decrypt this vhost's tickets, and whether the ticket
    /// should be renewed (it was sealed under a key that no longer encrypts).
    pub fn decrypting(
        &self,
        vhost: u32,
        vhost_name: &str,
        name: &[u8],
        now: u64,
    ) -> Option<(Arc<TicketKey>, bool)> {
        let epoch = u64::from_be_bytes(name.get(..EPOCH_LEN)?.try_into().ok()?);
        if name.len() != NAME_LEN || epoch > self.epoch(now) || !self.decrypts(epoch, now) {
            return None;
        }
        let secrets = {
            let s = self.secrets.read();
            let mut all = vec![s.current.clone()];
            all.extend(
                s.previous
                    .clone()
                    .filter(|p| p.retired_at + self.rotation + self.lifetime > now),
            );
            all.extend(s.decrypt_only.iter().cloned());
            all
        };
        let now_epoch = self.epoch(now);
        secrets.iter().enumerate().find_map(|(i, secret)| {
            let key = self.key(vhost, vhost_name, secret, epoch, now);
            (key.name[..] == *name).then_some((key, i != 0 || epoch != now_epoch))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [42; 32];

    #[test]
    fn windows_are_validated() {
        assert_eq!(
            TicketKeys::new(None, 100, 86401, 1).err(),
            Some(KeyError::Window),
            "ticket outlives 24 h"
        );
        assert_eq!(TicketKeys::new(None, 0, 0, 1).err(), Some(KeyError::Window));
        assert_eq!(
            TicketKeys::new(Some(&[1; 31]), 100, 50, 1).err(),
            Some(KeyError::SecretLength)
        );
        assert_eq!(
            TicketKeys::new(Some(&[1; 81]), 100, 50, 1).err(),
            Some(KeyError::SecretLength)
        );
        assert!(
            TicketKeys::new(Some(&[1; 80]), 100, 3600, 1).is_ok(),
            "nginx's 80-byte files"
        );
    }

    #[test]
    fn keys_are_per_vhost_and_shared_by_servers_with_the_same_secret() {
        let a = TicketKeys::new(Some(&SECRET), 3600, 1800, 2).unwrap();
        let b = TicketKeys::new(Some(&SECRET), 3600, 1800, 2).unwrap();
        let ka = a.encrypting(0, "a.test", 10_000);
        assert_eq!(
            ka.name,
            b.encrypting(0, "a.test", 10_000).name,
            "same secret, same key"
        );
        assert_ne!(
            ka.name,
            a.encrypting(1, "b.test", 10_000).name,
            "other vhost, other key"
        );
        assert!(
            a.decrypting(1, "b.test", &ka.name, 10_000).is_none(),
            "a.test's ticket never opens on b.test"
        );
        let (kb, renew) = b.decrypting(0, "a.test", &ka.name, 10_000).unwrap();
        assert_eq!((kb.aes, renew), (ka.aes, false));
    }

    #[test]
    fn rotated_key_decrypts_through_the_window_and_asks_for_renewal() {
        let k = TicketKeys::new(Some(&SECRET), 100, 50, 1).unwrap();
        let old = k.encrypting(0, "a.test", 150);
        assert!(matches!(
            k.decrypting(0, "a.test", &old.name, 199),
            Some((_, false))
        ));
        let new = k.encrypting(0, "a.test", 200);
        assert_ne!(new.name, old.name, "rotated at the epoch boundary");
        assert!(
            matches!(k.decrypting(0, "a.test", &old.name, 249), Some((_, true))),
            "decrypt-only window"
        );
        assert!(
            k.decrypting(0, "a.test", &old.name, 250).is_none(),
            "window over"
        );
    }

    #[test]
    fn a_new_secret_keeps_the_old_one_for_decryption() {
        let k = TicketKeys::new(Some(&SECRET), 100, 50, 1).unwrap();
        let old = k.encrypting(0, "a.test", 1000);
        k.rotate_secret(&[9; 32], 1010).unwrap();
        let new = k.encrypting(0, "a.test", 1010);
        assert_ne!(old.name, new.name);
        assert!(matches!(
            k.decrypting(0, "a.test", &old.name, 1020),
            Some((_, true))
        ));
        assert!(k.decrypting(0, "a.test", &old.name, 1010 + 150).is_none());
        assert_eq!(k.rotate_secret(&[1; 8], 1011), Err(KeyError::SecretLength));
    }

    #[test]
    fn unknown_names_do_not_open() {
        let k = TicketKeys::new(None, 100, 50, 1).unwrap();
        assert!(k.decrypting(0, "a.test", &[0; NAME_LEN], 10).is_none());
        assert!(k.decrypting(0, "a.test", &[], 10).is_none());
    }

    #[test]
    fn tickets_outlive_a_short_rotation_for_their_lifetime() {
        // rotation 4 s, lifetime 1 h: a ticket sealed at 0 still opens at 3599 s (renewed).
        let k = TicketKeys::new(Some(&SECRET), 4, 3600, 1).unwrap();
        let old = k.encrypting(0, "a.test", 1_000_000);
        for later in 1..100 {
            k.encrypting(0, "a.test", 1_000_000 + later * 4);
        }
        assert!(matches!(
            k.decrypting(0, "a.test", &old.name, 1_000_000 + 3599),
            Some((_, true))
        ));
        assert!(k
            .decrypting(0, "a.test", &old.name, 1_000_004 + 3600)
            .is_none());
    }

    #[test]
    fn decrypt_only_secrets_open_but_never_seal() {
        let other = TicketKeys::new(Some(&[7; 80]), 100, 50, 1).unwrap();
        let theirs = other.encrypting(0, "a.test", 1000);
        let k = TicketKeys::new(Some(&SECRET), 100, 50, 2).unwrap();
        assert!(k.decrypting(0, "a.test", &theirs.name, 1000).is_none());
        k.add_decrypt_only(&[7; 80]).unwrap();
        let (key, renew) = k.decrypting(0, "a.test", &theirs.name, 1000).unwrap();
        assert_eq!((key.aes, renew), (theirs.aes, true));
        assert_ne!(k.encrypting(0, "a.test", 1000).name, theirs.name);
        assert!(k.decrypting(1, "b.test", &theirs.name, 1000).is_none());
        for _ in 1..MAX_DECRYPT_ONLY {
            k.add_decrypt_only(&[8; 32]).unwrap();
        }
        assert_eq!(k.add_decrypt_only(&[9; 32]), Err(KeyError::TooMany));
    }
}
