//! The background writer: one thread per process applies queued puts and invalidations to Redis
//! on its own connection, with its own timeouts, feeding the shared breaker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use super::bus;
use super::pool::Pool;
use super::remote::{Failure, Host, Remote};
use super::resp::{Conn, RespError};
use crate::store::Key;

pub(super) enum Op {
    Put {
        key: Key,
        record: Arc<[u8]>,
        expires_at: u64,
    },
    /// Removal, tombstone or revocation: written and published to the fleet (`bus.rs`).
    Invalidate {
        kind: bus::Kind,
        key: Key,
        record: Option<Arc<[u8]>>,
        expires_at: u64,
    },
}

/// The background writer: one connection, its own timeouts, the shared breaker.
pub(super) struct Writer {
    pub(super) remote: Arc<Remote>,
    pub(super) pool: Arc<Pool>,
    /// The connection and the address generation it was made under.
    pub(super) conn: Option<(u64, Conn)>,
}

impl Writer {
    pub(super) fn run(mut self, ops: Receiver<Op>, closing: Arc<AtomicBool>, done: Arc<AtomicU64>) {
        while let Ok(op) = ops.recv() {
            if closing.load(Relaxed) {
                break;
            }
            if self.remote.breaker.allow() {
                let reused = self.conn.is_some();
                let result = match self.apply(&op) {
                    // The connection died since its last use (a restart): once more, anew.
                    Err(Failure::Error(_)) if reused => {
                        self.conn = None;
                        self.apply(&op)
                    }
                    r => r,
                };
                match result {
                    Ok(wrote) => {
                        self.remote.succeeded();
                        if wrote {
                            self.remote.counters.writes.fetch_add(1, Relaxed);
                        }
                    }
                    Err(f) => {
                        self.remote.counters.write_drops.fetch_add(1, Relaxed);
                        self.remote.failed(&self.pool, f);
                    }
                }
            } else {
                self.remote.counters.breaker_skips.fetch_add(1, Relaxed);
                self.remote.counters.write_drops.fetch_add(1, Relaxed);
            }
            done.fetch_add(1, Relaxed);
        }
    }

    /// Ok(true) when a record was written. A connection that failed is dropped (one that
    /// got an error reply is kept).
    fn apply(&mut self, op: &Op) -> Result<bool, Failure> {
        let r = &self.remote;
        let deadline = Instant::now() + r.options.write_timeout;
        // A record is sealed (and checked) before any connection is made.
        let put = match op {
            Op::Put {
                key,
                record,
                expires_at,
            } => {
                let Some((sealed, ttl)) = r.seal_record(key, record, *expires_at) else {
                    return Ok(false);
                };
                if sealed.len() > r.options.max_record {
                    return Err(Failure::Reply(format!(
                        "a record of {} bytes is over max_record ({}): not written",
                        sealed.len(),
                        r.options.max_record
                    )));
                }
                Some((r.redis_key(key), ttl.to_string(), sealed))
            }
            Op::Invalidate { .. } => None,
        };
        let generation = self.pool.target.generation();
        if self.conn.as_ref().is_some_and(|(g, _)| *g != generation) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if !matches!(r.host, Host::Fixed(_)) {
                // The writer may wait for the first resolution (lookups never do).
                self.pool.target.wait_first(deadline);
            }
            self.conn = Some((generation, r.connect(&self.pool.target, deadline)?));
        }
        let (_, conn) = self.conn.as_mut().expect("connected above");
        let result = match (op, put) {
            (_, Some((key, ttl, sealed))) => conn
                .call(
                    &[b"SET", key.as_bytes(), &sealed, b"EX", ttl.as_bytes()],
                    deadline,
                )
                .map(|_| true),
            (
                Op::Invalidate {
                    kind,
                    key,
                    record,
                    expires_at,
                },
                None,
            ) => bus::apply(
                r,
                conn,
                *kind,
                key,
                record.as_deref(),
                *expires_at,
                deadline,
            ),
            (Op::Put { .. }, None) => Ok(false),
        };
        result.map_err(|e| {
            // A replica now (READONLY, a failover): connect anew where the master is.
            if !e.keeps_connection()
                || matches!(&e, RespError::Server(m) if m.starts_with("READONLY"))
            {
                self.conn = None;
            }
            e.into()
        })
    }
}
