//! Where lookup connections go and the idle ones: the pool of this process, and the resolver
//! thread that keeps a host name's addresses (or the Sentinel-named master's) fresh, so that no
//! lookup ever waits for name resolution.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::resp::{self, Addr, Conn, Reply};

/// How often a host name is resolved again (sooner after a connection to it failed).
pub(super) const RESOLVE_EVERY: Duration = Duration::from_secs(30);
pub(super) const RESOLVE_RETRY: Duration = Duration::from_secs(1);
/// With Sentinel: how often the sentinels are asked for the master (sooner after a connection
/// failed or a READONLY reply, at most every `SENTINEL_RETRY`), and how long one may take.
pub(super) const SENTINEL_EVERY: Duration = Duration::from_millis(1000);
pub(super) const SENTINEL_RETRY: Duration = Duration::from_millis(200);
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(300);

/// Connections open for lookups in this process: idle ones, and how many exist in all (idle
/// or in use; every connection dropped is taken off `open`). And where new ones go.
#[derive(Default)]
pub(super) struct Pool {
    /// Idle connections with the address generation they were made under.
    idle: Mutex<Vec<(u64, Conn)>>,
    pub(super) open: AtomicUsize,
    pub(super) target: Target,
}

impl Pool {
    /// Drops every idle connection (the server went away: they are all dead).
    pub(super) fn discard_idle(&self) {
        let dropped = std::mem::take(&mut *self.idle.lock());
        self.open.fetch_sub(dropped.len(), Relaxed);
    }

    /// An idle connection to the address in use (older ones are dropped).
    pub(super) fn take(&self) -> Option<(u64, Conn)> {
        let generation = self.target.generation();
        let mut idle = self.idle.lock();
        while let Some((g, c)) = idle.pop() {
            if g == generation {
                return Some((g, c));
            }
            self.open.fetch_sub(1, Relaxed);
        }
        None
    }

    pub(super) fn put_back(&self, generation: u64, conn: Conn) {
        self.idle.lock().push((generation, conn));
    }
}

/// The addresses a host name resolved to, kept by a resolver thread of this process (at
/// start, every `RESOLVE_EVERY`, and soon after a connection failed), so that no lookup ever
/// waits for name resolution. Unused for an IP address or a Unix socket.
#[derive(Default)]
pub(super) struct Target {
    pub(super) state: Mutex<Resolved>,
    pub(super) wake: Condvar,
    generation: AtomicU64,
}

#[derive(Default)]
pub(super) struct Resolved {
    addrs: Vec<Addr>,
    /// The address in use.
    current: usize,
    /// Why there is none.
    pub(super) why: Option<String>,
    /// Resolve again now.
    refresh: bool,
    /// Connections failed since the last one made: resolve again every `retry`, not `every`.
    unhealthy: bool,
    pub(super) closing: bool,
}

impl Target {
    pub(super) fn current(&self) -> Result<Addr, String> {
        let s = self.state.lock();
        match s.addrs.get(s.current) {
            Some(a) => Ok(a.clone()),
            None => Err(s.why.clone().unwrap_or_else(|| "not yet".into())),
        }
    }

    /// Connecting to `addr` failed: the next address, and a fresh resolution.
    pub(super) fn connect_failed(&self, addr: &Addr) {
        let mut s = self.state.lock();
        if s.addrs.get(s.current) == Some(addr) {
            s.current = (s.current + 1) % s.addrs.len();
        }
        drop(s);
        self.refresh();
    }

    /// A connection was made: back to resolving every `every`.
    pub(super) fn connected(&self) {
        let mut s = self.state.lock();
        s.unhealthy = false;
    }

    /// Waits until a first resolution ended (for the writer, which may wait), or `deadline`.
    pub(super) fn wait_first(&self, deadline: Instant) {
        let mut s = self.state.lock();
        while s.addrs.is_empty() && s.why.is_none() && !s.closing {
            if self.wake.wait_until(&mut s, deadline).timed_out() {
                return;
            }
        }
    }

    /// Asks for a fresh resolution soon (a connection failed, or Redis said READONLY: a
    /// failover).
    pub(super) fn refresh(&self) {
        let mut s = self.state.lock();
        s.unhealthy = true;
        if !s.refresh {
            s.refresh = true;
            self.wake.notify_one();
        }
    }

    /// Bumped whenever the addresses change: connections made before go to a server no
    /// longer in use (a replica after a failover) and are dropped.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// The resolver thread, until the store closes: `resolve` at start, every `every`, and
    /// on request (at most once per `retry`; every `retry` while it fails).
    pub(super) fn run(
        &self,
        resolve: &dyn Fn() -> Result<Vec<Addr>, String>,
        changed: &dyn Fn(),
        every: Duration,
        retry: Duration,
    ) {
        let mut s = self.state.lock();
        let mut last: Option<Instant> = None;
        loop {
            if let Some(t) = last {
                let not_before = t + retry;
                while !s.closing && Instant::now() < not_before {
                    self.wake.wait_until(&mut s, not_before);
                }
            }
            if s.closing {
                return;
            }
            s.refresh = false;
            last = Some(Instant::now());
            let resolved = parking_lot::MutexGuard::unlocked(&mut s, resolve);
            let next = match resolved {
                Ok(addrs) if !addrs.is_empty() => {
                    if addrs != s.addrs {
                        let first = s.addrs.is_empty();
                        s.addrs = addrs;
                        s.current = 0;
                        self.generation.fetch_add(1, Relaxed);
                        if !first {
                            changed();
                        }
                    }
                    s.why = None;
                    if s.unhealthy {
                        retry
                    } else {
                        every
                    }
                }
                // Addresses resolved before stay in use.
                Ok(_) => {
                    s.why = Some("no address".into());
                    retry
                }
                Err(e) => {
                    s.why = Some(e);
                    retry
                }
            };
            self.wake.notify_all();
            let until = Instant::now() + next;
            while !s.refresh && !s.closing && !self.wake.wait_until(&mut s, until).timed_out() {}
        }
    }
}

/// What the resolver thread runs: host name resolution, or asking the sentinels.
pub(super) type Resolve = dyn Fn() -> Result<Vec<Addr>, String> + Send;

/// The addresses of `name:port`.
pub(super) fn resolve(name: &str, port: u16) -> Result<Vec<Addr>, String> {
    std::net::ToSocketAddrs::to_socket_addrs(&(name, port))
        .map(|a| a.map(Addr::Tcp).collect())
        .map_err(|e| e.to_string())
}

/// The master's address as the first sentinel that answers knows it
/// (`SENTINEL get-master-addr-by-name`).
pub(super) fn ask_sentinels(
    sentinels: &[(String, u16)],
    master: &str,
) -> Result<Vec<Addr>, String> {
    let mut why = Vec::new();
    for (host, port) in sentinels {
        let deadline = Instant::now() + SENTINEL_TIMEOUT;
        let Some(addr) = resolve(host, *port).ok().and_then(|a| a.into_iter().next()) else {
            why.push(format!("sentinel {host}:{port} does not resolve"));
            continue;
        };
        let asked = Conn::connect(&addr, &resp::Setup::default(), None, 4096, deadline).and_then(
            |mut c| {
                c.call(
                    &[b"SENTINEL", b"get-master-addr-by-name", master.as_bytes()],
                    deadline,
                )
            },
        );
        match asked {
            Ok(Reply::Array(a)) => match &a[..] {
                [Reply::Bulk(ip), Reply::Bulk(p)] => {
                    let ip = String::from_utf8_lossy(ip);
                    let p = String::from_utf8_lossy(p).parse::<u16>().unwrap_or(0);
                    match resolve(&ip, p) {
                        Ok(a) if !a.is_empty() && p != 0 => return Ok(a),
                        _ => why.push(format!("sentinel {host}:{port} named {ip}:{p}")),
                    }
                }
                _ => why.push(format!("sentinel {host}:{port}: an unexpected answer")),
            },
            Ok(Reply::Nil) => {
                why.push(format!("sentinel {host}:{port} knows no master {master:?}"))
            }
            Ok(_) => why.push(format!("sentinel {host}:{port}: an unexpected answer")),
            Err(e) => why.push(format!("sentinel {host}:{port}: {e}")),
        }
    }
    Err(why.join("; "))
}
