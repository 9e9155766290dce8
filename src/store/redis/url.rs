//! The store's URL: `redis://`, `rediss://` (TLS) and `redis+sentinel://`, snicache's tunables
//! in its query, and hiding its credentials from every message (`redact`, `scrub`). Parsing only:
//! no connection is made here.

use std::time::Duration;

use ::redis::IntoConnectionInfo as _;

/// Highest database index accepted in a URL (Redis's `databases` setting is an int; servers
/// are rarely configured with more than a few thousand).
const MAX_DB: i64 = 1 << 20;

/// Tunables, given as query parameters of the store URL (all optional):
/// `redis://[user:password@]HOST:PORT[/DB]?budget_ms=5&pool=8&backoff_ms=1000&queue=4096&write_timeout_ms=100&async_ms=200&max_record=64k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Longest a lookup may spend on Redis (connecting included): 1 to 1000 ms, default 5.
    pub budget: Duration,
    /// Most connections open for lookups at once: 1 to 256, default 8.
    pub pool: usize,
    /// How long an open circuit breaker keeps Redis out before it lets one probe through:
    /// 10 ms to 60 s, default 1 s.
    pub backoff: Duration,
    /// Writes waiting for the background writer: 1 to 1 000 000, default 4096.
    pub queue: usize,
    /// Connect and I/O timeout of the background writer: 1 to 10 000 ms, default 100.
    pub write_timeout: Duration,
    /// Longest a background fetch may take, from the lookup that queued it, before it counts
    /// as a timeout (the waiting handshake then goes on in full): 1 to 10 000 ms, default 200.
    pub async_budget: Duration,
    /// Longest value read from Redis (checked from the reply's length header, before the
    /// value is read) or written to it: 1k to 16m, default 64k.
    pub max_record: usize,
}

impl Default for RedisOptions {
    fn default() -> RedisOptions {
        RedisOptions {
            budget: Duration::from_millis(5),
            pool: 8,
            backoff: Duration::from_secs(1),
            queue: 4096,
            write_timeout: Duration::from_millis(100),
            async_budget: Duration::from_millis(200),
            max_record: 64 << 10,
        }
    }
}

/// A parsed `redis://` specification: the URL for the client (without snicache's parameters)
/// and the options.
#[derive(Clone)]
pub struct RedisSpec {
    /// The URL as the `redis` crate parses it (`rediss://` given as `redis://`, see `tls`).
    pub(super) url: String,
    /// The URL as given, for messages (credentials hidden by `shown`).
    given: String,
    pub options: RedisOptions,
    /// `rediss://`: TLS with these files.
    pub tls: Option<TlsFiles>,
    /// `redis+sentinel://`: the sentinels (host, port) and the master name.
    pub sentinel: Option<(Vec<(String, u16)>, String)>,
}

/// `rediss://` parameters: the CA certificates (PEM) the server's certificate must chain to,
/// and optionally a client certificate chain and its key (PEM) for servers that ask for one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl std::fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisSpec({}, {:?})", redact(&self.given), self.options)
    }
}

impl RedisSpec {
    /// Parses and checks a specification; no connection is made. Errors never quote the
    /// credentials.
    pub fn parse(spec: &str) -> Result<RedisSpec, String> {
        let shown = redact(spec);
        let (base, query) = match spec.split_once('?') {
            Some((b, q)) => (b, q),
            None => (spec, ""),
        };
        let mut o = RedisOptions::default();
        let tls = base.starts_with("rediss://");
        let (mut ca_file, mut cert_file, mut key_file) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let n = |min: u64, max: u64| {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|v| (min..=max).contains(v))
                    .ok_or_else(|| format!("{shown}: {name}={value:?} is not in {min}..={max}"))
            };
            match name {
                "budget_ms" => o.budget = Duration::from_millis(n(1, 1000)?),
                "pool" => o.pool = n(1, 256)? as usize,
                "backoff_ms" => o.backoff = Duration::from_millis(n(10, 60_000)?),
                "queue" => o.queue = n(1, 1_000_000)? as usize,
                "write_timeout_ms" => o.write_timeout = Duration::from_millis(n(1, 10_000)?),
                "async_ms" => o.async_budget = Duration::from_millis(n(1, 10_000)?),
                "max_record" => {
                    o.max_record = crate::size::parse(value)
                        .filter(|v| (1 << 10..=16 << 20).contains(v))
                        .ok_or_else(|| {
                            format!("{shown}: max_record={value:?} is not a size in 1k..=16m")
                        })? as usize
                }
                "ca_file" | "cert_file" | "key_file" if !tls => {
                    return Err(format!("{shown}: {name} is for rediss:// (TLS) URLs"))
                }
                "ca_file" | "cert_file" | "key_file" if value.is_empty() => {
                    return Err(format!("{shown}: {name} needs a path"))
                }
                "ca_file" => ca_file = Some(std::path::PathBuf::from(value)),
                "cert_file" => cert_file = Some(std::path::PathBuf::from(value)),
                "key_file" => key_file = Some(std::path::PathBuf::from(value)),
                _ => {
                    return Err(format!(
                        "{shown}: unknown parameter {name:?} (budget_ms, pool, backoff_ms, queue, write_timeout_ms, async_ms, max_record; ca_file, cert_file, key_file with rediss://)"
                    ))
                }
            }
        }
        let tls = match (tls, ca_file, cert_file, key_file) {
            (false, ..) => None,
            (true, None, ..) => {
                return Err(format!(
                    "{shown}: rediss:// needs ca_file=PATH (the CA certificates, PEM, that the server's certificate must chain to)"
                ))
            }
            (true, Some(ca_file), Some(c), Some(k)) => Some(TlsFiles {
                ca_file,
                client: Some((c, k)),
            }),
            (true, Some(ca_file), None, None) => Some(TlsFiles {
                ca_file,
                client: None,
            }),
            (true, Some(_), ..) => {
                return Err(format!(
                    "{shown}: cert_file and key_file go together (a client certificate and its key)"
                ))
            }
        };
        let given = base;
        let plain;
        let mut sentinel = None;
        let base = if let Some(rest) = base.strip_prefix("rediss://") {
            plain = format!("redis://{rest}");
            plain.as_str()
        } else if let Some(rest) = base.strip_prefix("redis+sentinel://") {
            // [user:password@]HOST:PORT,HOST:PORT.../MASTER[/DB]: the credentials and DB are
            // the master's.
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (userinfo, hosts) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let mut sentinels = Vec::new();
            for h in hosts.split(',') {
                let (host, port) = match h.rsplit_once(':') {
                    Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)),
                    None => (h, Some(26379)),
                };
                match port {
                    Some(port) if !host.is_empty() => {
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        sentinels.push((host.to_owned(), port))
                    }
                    _ => return Err(format!("{shown}: {h:?} is not a sentinel HOST:PORT")),
                }
            }
            let (master, db) = path.split_once('/').unwrap_or((path, ""));
            if master.is_empty() {
                return Err(format!(
                    "{shown}: redis+sentinel://HOST:PORT,HOST:PORT.../MASTER[/DB] needs the master name"
                ));
            }
            sentinel = Some((sentinels, master.to_owned()));
            plain = match userinfo {
                Some(u) => format!("redis://{u}@sentinel-master/{db}"),
                None => format!("redis://sentinel-master/{db}"),
            };
            plain.as_str()
        } else {
            base
        };
        let info = base.into_connection_info().map_err(|e| {
            format!(
                "{shown}: not a redis://[user:password@]HOST:PORT[/DB] URL ({})",
                scrub(&e.to_string(), base)
            )
        })?;
        if !(0..=MAX_DB).contains(&info.redis.db) {
            return Err(format!(
                "{shown}: database index {} is out of range (0..={MAX_DB}; a Redis server has 16 unless configured otherwise)",
                info.redis.db
            ));
        }
        if tls.is_some() && !matches!(info.addr, ::redis::ConnectionAddr::Tcp(..)) {
            return Err(format!("{shown}: rediss:// needs a HOST:PORT"));
        }
        Ok(RedisSpec {
            url: base.to_owned(),
            given: given.to_owned(),
            options: o,
            tls,
            sentinel,
        })
    }

    /// The URL with its credentials hidden, for messages.
    pub fn shown(&self) -> String {
        redact(&self.given)
    }
}

/// `url` with any `user:password@` replaced by `***@`.
pub fn redact(url: &str) -> String {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return url.to_owned();
    };
    let scheme_len = url.len() - rest.len();
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_len], &rest[at..]),
        None => url.to_owned(),
    }
}

/// `message` with the user name and password of `url` (if any) replaced by `***`, for error
/// texts that come from the client library.
pub(super) fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            let mut secrets: Vec<&str> = userinfo.split(':').filter(|s| s.len() > 1).collect();
            secrets.push(userinfo);
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for s in secrets {
                out = out.replace(s, "***");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("redis://user:s3cret@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://:pw@h:1"), "redis://***@h:1");
        assert_eq!(redact("redis://h:1/0?x=a@b"), "redis://h:1/0?x=a@b");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        let err = RedisSpec::parse("redis://u:topsecret@h:1?pool=0").unwrap_err();
        assert!(!err.contains("topsecret") && err.contains("pool"), "{err}");
        let err = RedisSpec::parse("redis://u:topsecret@h:1?nope=1").unwrap_err();
        assert!(!err.contains("topsecret"), "{err}");
        let spec = RedisSpec::parse("redis://u:topsecret@h:1").unwrap();
        assert!(!format!("{spec:?}").contains("topsecret"));
        assert_eq!(
            scrub(
                "AUTH failed for u:topsecret (topsecret)",
                "redis://u:topsecret@h:1"
            ),
            "AUTH failed for *** (***)"
        );
    }

    #[test]
    fn options_parse() {
        let s =
            RedisSpec::parse("redis://127.0.0.1:6379/1?budget_ms=3&pool=2&backoff_ms=50").unwrap();
        assert_eq!(s.options.budget, Duration::from_millis(3));
        assert_eq!(s.options.pool, 2);
        assert_eq!(s.options.backoff, Duration::from_millis(50));
        assert_eq!(s.url, "redis://127.0.0.1:6379/1");
        for bad in [
            "redis://h:1?budget_ms=0",
            "redis://h:1?budget_ms=x",
            "redis://h:1?queue=0",
        ] {
            assert!(RedisSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sentinel_urls_parse() {
        let s = RedisSpec::parse(
            "redis+sentinel://u:pw@10.0.0.1:26379,s2:26380,s3,[::1]:5/mymaster/2?budget_ms=7",
        )
        .unwrap();
        let (sentinels, master) = s.sentinel.clone().unwrap();
        assert_eq!(
            sentinels,
            vec![
                ("10.0.0.1".into(), 26379),
                ("s2".into(), 26380),
                ("s3".into(), 26379),
                ("::1".into(), 5)
            ]
        );
        assert_eq!(master, "mymaster");
        assert_eq!(s.options.budget, Duration::from_millis(7));
        assert!(!format!("{s:?}").contains("pw") && s.shown().contains("***@10.0.0.1"));
        let info = s.url.as_str().into_connection_info().unwrap();
        assert_eq!(info.redis.db, 2);
        assert_eq!(info.redis.password.as_deref(), Some("pw"));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:x/m",
            "redis+sentinel://:1/m",
        ] {
            assert!(RedisSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
