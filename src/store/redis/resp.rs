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

fn tls_error(e: rustls::Error) -> RespError {
    RespError::Io(format!("TLS: {e}"))
}

/// Writes what rustls has to send, before `deadline`.
fn flush_tls(
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
fn read_tls(
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

/// Closing a TCP connection that still has a large reply on its way tears down both ends'
/// queues inside `close`: measured with a 10 MB value under a key, up to a millisecond or more,
/// on the handshake path. So a dropped connection's socket is closed on a background thread:
/// the drop keeps a duplicate of the descriptor (the socket lives on while the duplicate is
/// open, so closing the original costs nothing) and hands it to the closer. Each process
/// starts its own closer (a forked worker has none of its parent's threads); when the queue is
/// full or busy, the socket is closed in place.
mod closer {
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
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    /// A one-connection server that answers each request with the next canned reply.
    fn serve(replies: Vec<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            for r in replies {
                if s.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                if s.write_all(r).is_err() {
                    return;
                }
            }
            let _ = s.read(&mut buf);
        });
        addr
    }

    #[test]
    fn replies_parse_and_errors_keep_the_connection() {
        let addr = serve(vec![
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b"*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n",
            b":42\r\n+OK\r\n",
        ]);
        let d = || Instant::now() + Duration::from_secs(5);
        let mut c = Conn::connect(&Addr::Tcp(addr), &Setup::default(), None, 100, d()).unwrap();
        assert_eq!(
            c.call(&[b"GET", b"k"], d()).unwrap(),
            Reply::Bulk(b"hello".to_vec())
        );
        assert_eq!(c.call(&[b"GET", b"k"], d()).unwrap(), Reply::Nil);
        let e = c.call(&[b"GET", b"k"], d()).unwrap_err();
        assert!(
            e.keeps_connection() && e.to_string().contains("WRONGTYPE"),
            "{e}"
        );
        assert_eq!(
            c.call(&[b"SENTINEL"], d()).unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"127.0.0.1".to_vec()),
                Reply::Bulk(b"6379".to_vec())
            ])
        );
        // Two replies in one segment: each call takes its own.
        assert_eq!(c.call(&[b"X"], d()).unwrap(), Reply::Int(42));
    }

    #[test]
    fn a_bulk_over_the_limit_is_refused_from_its_header() {
        let addr = serve(vec![b"$10485760\r\n"]);
        let d = Instant::now() + Duration::from_secs(5);
        let mut c = Conn::connect(&Addr::Tcp(addr), &Setup::default(), None, 65536, d).unwrap();
        let e = c.call(&[b"GET", b"k"], d).unwrap_err();
        assert!(matches!(e, RespError::TooLarge(10485760)), "{e}");
        assert!(!e.keeps_connection());
    }

    #[test]
    fn a_silent_server_times_out_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let start = Instant::now();
        let mut c = Conn::connect(
            &Addr::Tcp(addr),
            &Setup::default(),
            None,
            100,
            start + Duration::from_secs(5),
        )
        .unwrap();
        let t = Instant::now();
        let e = c
            .call(&[b"GET", b"k"], t + Duration::from_millis(5))
            .unwrap_err();
        let took = t.elapsed();
        assert!(matches!(e, RespError::Timeout), "{e}");
        assert!(took >= Duration::from_millis(5), "{took:?}");
        drop(l);
    }
}
