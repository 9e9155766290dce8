//! Closing a TCP connection that still has a large reply on its way tears down both ends'
//! queues inside `close`: measured with a 10 MB value under a key, up to a millisecond or more,
//! on the handshake path. So a dropped connection's socket is closed on a background thread:
//! the drop keeps a duplicate of the descriptor (the socket lives on while the duplicate is
//! open, so closing the original costs nothing) and hands it to the closer. Each process
//! starts its own closer (a forked worker has none of its parent's threads); when the queue is
//! full or busy, the socket is closed in place.

use parking_lot::Mutex;
use std::os::fd::RawFd;
use std::sync::mpsc::{sync_channel, SyncSender};

/// The closer's queue and the process it runs in.
static CLOSER: Mutex<Option<(u32, SyncSender<RawFd>)>> = parking_lot::const_mutex(None);

fn start() -> Option<SyncSender<RawFd>> {
    let (tx, rx) = sync_channel::<RawFd>(256);
    std::thread::Builder::new()
        .name("snicache-closer".into())
        .spawn(move || {
            for fd in rx {
                // SAFETY: a duplicate `take` made and handed over to this thread alone.
                unsafe { libc::close(fd) };
            }
        })
        .ok()?;
    Some(tx)
}

/// Takes over the socket behind `fd`; its owner closes `fd` itself right after.
pub(super) fn take(fd: RawFd) {
    // try_lock: a lock held by a thread that did not survive a fork never blocks us.
    let Some(mut closer) = CLOSER.try_lock() else {
        return;
    };
    let pid = std::process::id();
    if !matches!(&*closer, Some((p, _)) if *p == pid) {
        *closer = start().map(|tx| (pid, tx));
    }
    let Some((_, tx)) = &*closer else {
        return;
    };
    // SAFETY: `fd` is an open descriptor of the caller's.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup >= 0 && tx.try_send(dup).is_err() {
        // SAFETY: our own duplicate, not handed over.
        unsafe { libc::close(dup) };
    }
}
