//! Session ticket keys, one family per virtual host (RFC 5077 §4, RFC 8446 §4.6.1, R8, R10).
//!
//! Keys are derived with HKDF-SHA256 from a master secret, the vhost's name and a time epoch:
//! a ticket sealed for one vhost never opens on another, and servers sharing the secret derive
//! the same keys with no coordination. A key encrypts during its epoch (`rotation` seconds) and
//! still decrypts for `lifetime` more seconds; `lifetime <= rotation`, so a ticket is valid for
//! at most half its key's life. A new master secret can be installed at run time; the previous
//! one keeps decrypting through the same window. Key bytes are zeroized when dropped.

use std::sync::Arc;

use parking_lot::RwLock;

use super::{hkdf_sha256, random, zeroize};

/// Length of a key name, as OpenSSL's ticket key callback expects.
pub const NAME_LEN: usize = 16;
const SALT: &[u8] = b"snicache ticket keys v1";

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
    /// Master secrets are 32 to 64 bytes.
    SecretLength,
    /// `rotation` must be 1 s to 7 days and `lifetime` 1 s to `rotation`.
    Window,
}

struct Secrets {
    current: Arc<Secret>,
    previous: Option<Arc<Secret>>,
}

pub struct TicketKeys {
    rotation: u64,
    lifetime: u64,
    secrets: RwLock<Secrets>,
    /// Derived keys by vhost index, a handful each.
    cache: Box<[RwLock<Vec<Arc<TicketKey>>>]>,
}

const MAX_ROTATION: u32 = 7 * 24 * 3600;

impl TicketKeys {
    /// `secret` `None` draws a random one (tickets then open only in this process).
    pub fn new(
        secret: Option<&[u8]>,
        rotation: u32,
        lifetime: u32,
        vhosts: usize,
    ) -> Result<TicketKeys, KeyError> {
        if rotation == 0 || rotation > MAX_ROTATION || lifetime == 0 || lifetime > rotation {
            return Err(KeyError::Window);
        }
        let bytes = match secret {
            Some(s) if !(32..=64).contains(&s.len()) => return Err(KeyError::SecretLength),
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

    /// Installs a new master secret; the current one only decrypts from now on, for one more
    /// rotation plus a ticket lifetime.
    pub fn rotate_secret(&self, secret: &[u8], now: u64) -> Result<(), KeyError> {
        if !(32..=64).contains(&secret.len()) {
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
        key.name.copy_from_slice(&okm[..NAME_LEN]);
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
        let (current, previous) = {
            let s = self.secrets.read();
            (s.current.clone(), s.previous.clone())
        };
        let now_epoch = self.epoch(now);
        let mut secrets = vec![(current, true)];
        if let Some(p) = previous.filter(|p| p.retired_at + self.rotation + self.lifetime > now) {
            secrets.push((p, false));
        }
        for (secret, is_current) in &secrets {
            let mut epoch = now_epoch;
            loop {
                if !self.decrypts(epoch, now) {
                    break;
                }
                let key = self.key(vhost, vhost_name, secret, epoch, now);
                if key.name[..] == *name {
                    let renew = !is_current || epoch != now_epoch;
                    return Some((key, renew));
                }
                if epoch == 0 {
                    break;
                }
                epoch -= 1;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [42; 32];

    #[test]
    fn windows_are_validated() {
        assert_eq!(
            TicketKeys::new(None, 100, 101, 1).err(),
            Some(KeyError::Window),
            "ticket outlives half a key"
        );
        assert_eq!(TicketKeys::new(None, 0, 0, 1).err(), Some(KeyError::Window));
        assert_eq!(
            TicketKeys::new(Some(&[1; 31]), 100, 50, 1).err(),
            Some(KeyError::SecretLength)
        );
        assert!(TicketKeys::new(Some(&[1; 64]), 100, 100, 1).is_ok());
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
}
