//! rustls over the client's non-blocking socket: its records are read and written with the
//! same deadlines as plain RESP.

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use super::{wait, RespError};

/// The raw non-blocking socket under rustls: never blocks, never raises SIGPIPE.
struct Fd(RawFd);

impl io::Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid writable slice.
        let n = unsafe {
            libc::recv(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl io::Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid slice.
        let n = unsafe {
            libc::send(
                self.0,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(super) fn tls_error(e: rustls::Error) -> RespError {
    RespError::Io(format!("TLS: {e}"))
}

/// Writes what rustls has to send, before `deadline`.
pub(super) fn flush_tls(
    fd: RawFd,
    tls: &mut rustls::ClientConnection,
    deadline: Instant,
) -> Result<(), RespError> {
    while tls.wants_write() {
        match tls.write_tls(&mut Fd(fd)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(fd, libc::POLLOUT, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RespError::Io(e.to_string())),
        }
    }
    Ok(())
}

/// Reads TLS records (waiting until `deadline`) and processes them.
pub(super) fn read_tls(
    fd: RawFd,
    tls: &mut rustls::ClientConnection,
    deadline: Instant,
) -> Result<(), RespError> {
    loop {
        match tls.read_tls(&mut Fd(fd)) {
            Ok(0) => return Err(RespError::Io("connection closed by Redis".into())),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(fd, libc::POLLIN, deadline)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RespError::Io(e.to_string())),
        }
    }
    if let Err(e) = tls.process_new_packets() {
        // Tell the server why (best effort), then fail closed.
        let _ = flush_tls(fd, tls, deadline);
        return Err(tls_error(e));
    }
    flush_tls(fd, tls, deadline)
}
