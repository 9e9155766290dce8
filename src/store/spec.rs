//! Store specifications as hosts and the demo server write them: `memory[:SIZE]`,
//! `shm:SIZE`, `redis://[user:password@]HOST:PORT[/DB]`, `rediss://...?ca_file=PATH` (TLS).

/// A parsed store specification. Its `Debug` hides Redis credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// In-process memory store; `None` keeps the configured size.
    Memory(Option<u64>),
    /// Shared memory of this many bytes, created before the host forks its workers.
    Shm(u64),
    /// A Redis server, behind a local memory tier.
    Redis(String),
}

impl std::fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Memory(size) => write!(f, "Memory({size:?})"),
            StoreSpec::Shm(size) => write!(f, "Shm({size})"),
            StoreSpec::Redis(url) => write!(f, "Redis({})", super::redis::redact(url)),
        }
    }
}

/// Why a specification was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

/// Smallest memory store (as `snicache_config_set_max_bytes` requires): a few session records
/// with their overhead; below that a store would hold none and warn on every handshake.
pub const MIN_MEMORY_BYTES: u64 = 16 * 1024;

impl StoreSpec {
    pub fn parse(spec: &str) -> Result<StoreSpec, SpecError> {
        if spec.chars().any(char::is_whitespace) {
            return Err(SpecError(format!(
                "{:?} has a space in it: write the store without spaces, e.g. memory:10m",
                super::redis::redact(spec)
            )));
        }
        let size = |s: &str| {
            crate::size::parse(s)
                .ok_or_else(|| SpecError(format!("{s:?} is not a size like 10m, 512k or 1g")))
        };
        if spec.starts_with("redis://")
            || spec.starts_with("rediss://")
            || spec.starts_with("redis+sentinel://")
        {
            if spec.ends_with("://") {
                return Err(SpecError(format!("{spec} needs a HOST:PORT")));
            }
            super::redis::RedisSpec::parse(spec).map_err(SpecError)?;
            return Ok(StoreSpec::Redis(spec.to_owned()));
        }
        match spec.split_once(':') {
            None if spec == "memory" => Ok(StoreSpec::Memory(None)),
            Some(("memory", s)) => match size(s)? {
                n if n < MIN_MEMORY_BYTES => Err(SpecError(format!(
                    "memory:{s} ({n} bytes) cannot hold a session record: 16k at least"
                ))),
                n => Ok(StoreSpec::Memory(Some(n))),
            },
            Some(("shm", s)) => Ok(StoreSpec::Shm(size(s)?)),
            None if spec == "shm" => Err(SpecError("shm needs a size, e.g. shm:10m".into())),
            _ => Err(SpecError(format!(
                "unknown store {spec:?}: use memory[:SIZE], shm:SIZE or redis://HOST:PORT"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(StoreSpec::parse("memory"), Ok(StoreSpec::Memory(None)));
        assert_eq!(
            StoreSpec::parse("memory:10m"),
            Ok(StoreSpec::Memory(Some(10 << 20)))
        );
        assert_eq!(StoreSpec::parse("shm:1g"), Ok(StoreSpec::Shm(1 << 30)));
        assert_eq!(
            StoreSpec::parse("redis://127.0.0.1:6379"),
            Ok(StoreSpec::Redis("redis://127.0.0.1:6379".into()))
        );
        let secret = StoreSpec::parse("redis://user:hunter2@127.0.0.1:6379").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        for bad in [
            "",
            "shm",
            "shm:",
            "memory:x",
            "disk:1m",
            "redis://",
            "memcached://x",
            "memory:1k",
            "memory:16383",
            "memory: 10m",
            "memory:10m ",
            " memory",
            "redis://127.0.0.1:6379/99999999",
            "redis://127.0.0.1:6379/-1",
        ] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad:?}");
        }
        let e = StoreSpec::parse("memory:1k").unwrap_err().0;
        assert!(e.contains("1024 bytes") && e.contains("16k"), "{e}");
        let e = StoreSpec::parse("memory: 10m").unwrap_err().0;
        assert!(e.contains("space"), "{e}");
        let e = StoreSpec::parse("redis://u:hunter2@h:1/ 2").unwrap_err().0;
        assert!(!e.contains("hunter2"), "{e}");
        let e = StoreSpec::parse("redis://127.0.0.1:6379/99999999")
            .unwrap_err()
            .0;
        assert!(e.contains("out of range"), "{e}");
        assert_eq!(
            StoreSpec::parse("memory:16k"),
            Ok(StoreSpec::Memory(Some(16 << 10)))
        );
    }
}
