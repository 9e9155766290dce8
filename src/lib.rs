//! snicache: a per-virtual-host TLS session cache with an RFC resumption policy, for servers
//! built on OpenSSL or BoringSSL, exposed through a C ABI (`include/snicache.h`).
//!
//! Layers, top to bottom: `ffi` (the C surface and panic boundary) → `engine` (virtual hosts,
//! policy, per-connection decisions, stats) → `store` (one trait: memory, shm, Redis; a host's
//! own store comes in through `ffi::hooks`) → `record`.
//! `host` holds the table of the host's SSL functions; only `ffi` calls through it. `crypto` is
//! snicache's own (BoringSSL via `boring`), never the host's.

pub mod crypto;
pub mod engine;
pub mod ffi;
pub mod host;
pub mod record;
pub mod size;
pub mod store;
