//! A real `redis-server` (Debian's package; scripts/deps.sh and .ci/run install it) for the
//! tests, on a free loopback port, stopped when dropped. Nothing is skipped: without
//! redis-server the tests using it fail.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    /// On a free port no other test of this process was given (tests run in parallel, and one
    /// restarts its server on the same port).
    pub fn start() -> RedisServer {
        static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
        loop {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut given = GIVEN.lock().unwrap();
            if !given.contains(&port) {
                given.push(port);
                drop(given);
                return RedisServer::start_on(port);
            }
        }
    }

    pub fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install Debian's redis-server package \
                     (scripts/deps.sh does); these tests are never skipped"
                )
            });
        let mut server = RedisServer { child, port };
        let end = Instant::now() + Duration::from_secs(10);
        // Ours, not another process's server on that port.
        while server.pid() != Some(server.child.id()) {
            assert!(
                Instant::now() < end && server.child.try_wait().unwrap().is_none(),
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn pid(&self) -> Option<u32> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.cli().ok()?)
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cli(&self) -> redis::RedisResult<redis::Connection> {
        let mut c =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    }

    /// Stalls the server for `seconds` (`DEBUG SLEEP`) from a thread, and returns once the stall
    /// has begun (a PING goes unanswered); join the thread to wait for the end of the stall.
    pub fn stall(&self, seconds: u32) -> std::thread::JoinHandle<()> {
        let mut c = self.cli().unwrap();
        let probe = self.cli().unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let sleeper = std::thread::spawn(move || {
            redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(seconds)
                .query::<()>(&mut c)
                .unwrap()
        });
        let end = Instant::now() + Duration::from_secs(10);
        let mut probe = Some(probe);
        while let Some(mut p) = probe.take() {
            assert!(Instant::now() < end, "redis-server never stalled");
            match redis::cmd("PING").query::<String>(&mut p) {
                Ok(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    probe = Some(p);
                }
                Err(e) => assert!(e.is_timeout(), "PING failed: {e}"),
            }
        }
        sleeper
    }

    pub fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
