//! A small RESP2 client for the Redis store, made so that nothing it does outlives a deadline:
//! sockets are non-blocking and every wait is a `ppoll` on what is left of the deadline (socket
//! timeouts, `SO_RCVTIMEO`, count in scheduler ticks: 4 ms at HZ=250, too coarse for a 5 ms
//! budget); connecting is bounded the same way; a bulk reply longer than the caller's limit is
//! refused from its length header, before its body is read. Writes never raise SIGPIPE (the
//! library lives in hosts that do not ignore it).
//!
//! Name resolution is not done here: callers pass socket addresses (see `pool.rs`). TLS
//! (`rediss://`) is rustls over the same non-blocking socket, with the same deadlines.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tls::{flush_tls, read_tls, tls_error};

mod closer;
mod tls;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What a new connection sends before its first command.
#[derive(Clone, Default)]
pub struct Setup {
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
}

/// How a call failed.
#[derive(Debug)]
pub enum RespError {
    /// The deadline passed; the connection is unusable (a late reply would answer the next
    /// command).
    Timeout,
    /// Connecting, reading or writing failed; the connection is unusable.
    Io(String),
    /// An error reply (OOM, NOPERM, WRONGTYPE, READONLY...): the connection is still in step
    /// and usable.
    Server(String),
    /// A bulk reply of this many bytes, over the limit; its body was not read, so the
    /// connection is unusable.
    TooLarge(u64),
    /// Not RESP; the connection is unusable.
    Protocol(String),
}

impl RespError {
    /// Whether the connection can carry further commands.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, RespError::Server(_))
    }
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Timeout => f.write_str("timed out"),
            RespError::Io(e) => f.write_str(e),
            RespError::Server(e) => write!(f, "error reply: {e}"),
            RespError::TooLarge(n) => write!(f, "a value of {n} bytes, over the record size limit"),
            RespError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

/// TLS for new connections: the client configuration (roots, client certificate) and the
/// name the server's certificate must carry.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: rustls_pki_types::ServerName<'static>,
}

enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(TcpStream, Box<rustls::ClientConnection>),
}

impl Sock {
    fn fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) | Sock::Tls(s, _) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// Longest status, error or length line accepted.
const MAX_LINE: usize = 4096;
/// Deepest array nesting accepted.
const MAX_DEPTH: usize = 4;

/// One connection.
pub struct Conn {
    sock: Sock,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Longest bulk reply accepted.
    max_bulk: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        closer::take(self.sock.fd());
    }
}

/// Appends one command (a RESP array of bulk strings) to `out`.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn remaining(deadline: Instant) -> Result<std::time::Duration, RespError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(RespError::Timeout)
}

/// Waits until `fd` is ready for `events` or `deadline` passes.
fn wait(fd: RawFd, events: libc::c_short, deadline: Instant) -> Result<(), RespError> {
    loop {
        let left = remaining(deadline)?;
        let ts = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a valid timespec, no signal mask.
        let n = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
        match n {
            1 => return Ok(()),
            0 => return Err(RespError::Timeout),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(RespError::Io(e.to_string()));
                }
            }
        }
    }
}

impl Conn {
    /// Connects to `addr` and sends `setup` (AUTH, SELECT), all before `deadline`.
    pub fn connect(
        addr: &Addr,
        setup: &Setup,
        tls: Option<&Tls>,
        max_bulk: usize,
        deadline: Instant,
    ) -> Result<Conn, RespError> {
        let sock = match addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, remaining(deadline)?).map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        RespError::Timeout
                    } else {
                        RespError::Io(format!("connecting to {a}: {e}"))
                    }
                })?;
                let _ = s.set_nodelay(true);
                s.set_nonblocking(true)
                    .map_err(|e| RespError::Io(e.to_string()))?;
                match tls {
                    None => Sock::Tcp(s),
                    Some(t) => {
                        let mut c =
                            rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                                .map_err(tls_error)?;
                        let fd = s.as_raw_fd();
                        // The whole handshake now: a certificate refused is a failed connect.
                        while c.is_handshaking() {
                            if c.wants_write() {
                                flush_tls(fd, &mut c, deadline)?;
                            } else {
                                read_tls(fd, &mut c, deadline)?;
                            }
                        }
                        Sock::Tls(s, Box::new(c))
                    }
                }
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p)
                    .map_err(|e| RespError::Io(format!("connecting to {}: {e}", p.display())))?;
                s.set_nonblocking(true)
                    .map_err(|e| RespError::Io(e.to_string()))?;
                Sock::Unix(s)
            }
        };
        let mut c = Conn {
            sock,
            buf: vec![0; 16 << 10],
            start: 0,
            end: 0,
            max_bulk,
        };
        if let Some(pw) = &setup.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &setup.username {
                args.push(u.as_bytes());
            }
            args.push(pw.as_bytes());
            // The reply never quotes the password; say only what failed.
            c.call(&args, deadline).map_err(|e| match e {
                RespError::Server(m) => RespError::Io(format!("authentication refused: {m}")),
                e => e,
            })?;
        }
        if setup.db != 0 {
            let db = setup.db.to_string();
            c.call(&[b"SELECT", db.as_bytes()], deadline)
                .map_err(|e| match e {
                    RespError::Server(m) => RespError::Io(format!("SELECT {db}: {m}")),
                    e => e,
                })?;
        }
        Ok(c)
    }

    /// Sends one command and reads its reply, all before `deadline`.
    pub fn call(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, RespError> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        encode(&mut out, args);
        self.send(&out, deadline)?;
        self.reply(deadline, 0)
    }

    /// Sends commands in one write (a pipeline) and reads every reply, all before `deadline`.
    /// The first error reply is the answer once every reply was read (the connection stays
    /// in step).
    pub fn call_many(
        &mut self,
        commands: &[&[&[u8]]],
        deadline: Instant,
    ) -> Result<Vec<Reply>, RespError> {
        let mut out = Vec::new();
        for args in commands {
            encode(&mut out, args);
        }
        self.send(&out, deadline)?;
        let mut replies = Vec::with_capacity(commands.len());
        let mut first_error = None;
        for _ in commands {
            match self.reply(deadline, 0) {
                Ok(r) => replies.push(r),
                Err(RespError::Server(m)) => {
                    first_error.get_or_insert(RespError::Server(m));
                }
                Err(e) => return Err(e),
            }
        }
        first_error.map_or(Ok(replies), Err)
    }

    /// Waits (until `deadline`) for the start of a reply nobody asked for (a pub/sub
    /// message); false when none came. Then `next_reply` reads it.
    pub fn readable(&mut self, deadline: Instant) -> Result<bool, RespError> {
        if self.start < self.end {
            return Ok(true);
        }
        let fd = self.sock.fd();
        if let Sock::Tls(_, tls) = &mut self.sock {
            // Plaintext rustls already holds does not show on the socket.
            self.start = 0;
            self.end = 0;
            match tls.reader().read(&mut self.buf) {
                Ok(0) => return Err(RespError::Io("connection closed by Redis".into())),
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(RespError::Io(e.to_string())),
            }
        }
        match wait(fd, libc::POLLIN, deadline) {
            Ok(()) => Ok(true),
            Err(RespError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads one reply (before `deadline`) without sending anything.
    pub fn next_reply(&mut self, deadline: Instant) -> Result<Reply, RespError> {
        self.reply(deadline, 0)
    }

    fn send(&mut self, mut data: &[u8], deadline: Instant) -> Result<(), RespError> {
        let fd = self.sock.fd();
        if let Sock::Tls(_, tls) = &mut self.sock {
            tls.writer()
                .write_all(data)
                .map_err(|e| RespError::Io(e.to_string()))?;
            return flush_tls(fd, tls, deadline);
        }
        while !data.is_empty() {
            // SAFETY: `data` is a valid slice; MSG_NOSIGNAL: EPIPE instead of SIGPIPE.
            let n = unsafe {
                libc::send(
                    fd,
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                data = &data[n as usize..];
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => wait(fd, libc::POLLOUT, deadline)?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(RespError::Io(e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads more bytes into the buffer (at least one), growing it when full.
    fn fill(&mut self, deadline: Instant) -> Result<(), RespError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let fd = self.sock.fd();
        if let Sock::Tls(_, tls) = &mut self.sock {
            loop {
                match tls.reader().read(&mut self.buf[self.end..]) {
                    Ok(0) => return Err(RespError::Io("connection closed by Redis".into())),
                    Ok(n) => {
                        self.end += n;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => read_tls(fd, tls, deadline)?,
                    Err(e) => return Err(RespError::Io(e.to_string())),
                }
            }
        }
        loop {
            let free = &mut self.buf[self.end..];
            // SAFETY: `free` is a valid writable slice.
            let n =
                unsafe { libc::recv(fd, free.as_mut_ptr().cast(), free.len(), libc::MSG_DONTWAIT) };
            if n > 0 {
                self.end += n as usize;
                return Ok(());
            }
            if n == 0 {
                return Err(RespError::Io("connection closed by Redis".into()));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => wait(fd, libc::POLLIN, deadline)?,
                io::ErrorKind::Interrupted => {}
                _ => return Err(RespError::Io(e.to_string())),
            }
        }
    }

    /// One line, without its CRLF.
    fn line(&mut self, deadline: Instant) -> Result<Vec<u8>, RespError> {
        let mut searched: usize = 0;
        loop {
            let data = &self.buf[self.start..self.end];
            if let Some(i) = data[searched.saturating_sub(1)..]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let i = searched.saturating_sub(1) + i;
                let l = data[..i].to_vec();
                self.start += i + 2;
                return Ok(l);
            }
            searched = data.len();
            if searched > MAX_LINE {
                return Err(RespError::Protocol("a line too long".into()));
            }
            self.fill(deadline)?;
        }
    }

    fn reply(&mut self, deadline: Instant, depth: usize) -> Result<Reply, RespError> {
        let line = self.line(deadline)?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(RespError::Protocol("an empty line".into()));
        };
        let text = || String::from_utf8_lossy(rest).into_owned();
        let number = || {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| RespError::Protocol(format!("not a number: {:?}", text())))
        };
        match kind {
            b'+' => Ok(Reply::Status(text())),
            b'-' => Err(RespError::Server(text())),
            b':' => Ok(Reply::Int(number()?)),
            b'$' => {
                let n = number()?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                if n as u64 > self.max_bulk as u64 {
                    return Err(RespError::TooLarge(n as u64));
                }
                let n = n as usize;
                while self.end - self.start < n + 2 {
                    self.fill(deadline)?;
                }
                let body = self.buf[self.start..self.start + n].to_vec();
                if &self.buf[self.start + n..self.start + n + 2] != b"\r\n" {
                    return Err(RespError::Protocol("a bulk reply without its CRLF".into()));
                }
                self.start += n + 2;
                Ok(Reply::Bulk(body))
            }
            b'*' => {
                let n = number()?;
                if n < 0 {
                    return Ok(Reply::Nil);
                }
                if depth >= MAX_DEPTH || n > 1024 {
                    return Err(RespError::Protocol("an array too deep or too long".into()));
                }
                let mut items = Vec::with_capacity(n as usize);
                let mut first_error = None;
                for _ in 0..n {
                    // Read every element (the connection stays in step), keep the first error.
                    match self.reply(deadline, depth + 1) {
                        Ok(r) => items.push(r),
                        Err(RespError::Server(m)) => {
                            first_error.get_or_insert(RespError::Server(m));
                        }
                        Err(e) => return Err(e),
                    }
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(Reply::Array(items)),
                }
            }
            _ => Err(RespError::Protocol(format!(
                "unexpected reply type {:?}",
                kind as char
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
