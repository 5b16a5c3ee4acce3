//! A stand-in for systemd's notify socket, for tests that run a binary under
//! `NOTIFY_SOCKET` and check what it sends.

use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A bound unix datagram socket in a fresh folder under the temporary directory;
/// both are removed on drop. Point a child's `NOTIFY_SOCKET` at [`NotifySocket::path`].
#[derive(Debug)]
pub struct NotifySocket {
    dir: PathBuf,
    path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    /// Binds a new socket.
    pub fn bind() -> std::io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sandbox-notify-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path)?;
        Ok(Self { dir, path, socket })
    }

    /// The socket's path (the value for `NOTIFY_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lines (assignments such as `READY=1`) of the next datagram, waiting at
    /// most `timeout`; `None` when nothing came.
    pub fn recv(&self, timeout: Duration) -> std::io::Result<Option<Vec<String>>> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 64 * 1024];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every line that arrives within `window`.
    pub fn lines_during(&self, window: Duration) -> std::io::Result<Vec<String>> {
        let end = Instant::now() + window;
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(lines);
            }
            if let Some(more) = self.recv(left)? {
                lines.extend(more);
            }
        }
    }

    /// Waits at most `within` for a line that satisfies `wanted`; returns it, with
    /// every line seen before it, or `None` (and the lines seen) when none came.
    pub fn wait_for(
        &self,
        within: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> std::io::Result<(Option<String>, Vec<String>)> {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok((None, seen));
            }
            for line in self.recv(left)?.unwrap_or_default() {
                if wanted(&line) {
                    return Ok((Some(line), seen));
                }
                seen.push(line);
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_what_is_sent_and_times_out_quietly() {
        let sock = NotifySocket::bind().expect("bind");
        let client = UnixDatagram::unbound().expect("socket");
        client
            .send_to(b"READY=1\nSTATUS=ready\n", sock.path())
            .expect("send");
        assert_eq!(
            sock.recv(Duration::from_secs(2)).expect("recv"),
            Some(vec!["READY=1".to_owned(), "STATUS=ready".to_owned()])
        );
        assert_eq!(sock.recv(Duration::from_millis(50)).expect("recv"), None);
        client.send_to(b"WATCHDOG=1\n", sock.path()).expect("send");
        let (found, seen) = sock
            .wait_for(Duration::from_secs(2), |l| l == "WATCHDOG=1")
            .expect("wait");
        assert_eq!(found.as_deref(), Some("WATCHDOG=1"));
        assert!(seen.is_empty());
        let dir = sock.dir.clone();
        drop(sock);
        assert!(!dir.exists());
    }
}

/// A binary started as systemd would start a `Type=notify` service with `WatchdogSec`:
/// `NOTIFY_SOCKET` and `WATCHDOG_USEC` set, its log kept in a file that is printed when
/// the test fails. Killed and cleaned up on drop.
#[derive(Debug)]
pub struct NotifiedChild {
    child: std::process::Child,
    log: PathBuf,
    name: String,
}

impl NotifiedChild {
    /// Spawns `command` (program and arguments set by the caller) against `socket` with
    /// a watchdog period of `watchdog`.
    pub fn spawn(
        mut command: std::process::Command,
        socket: &NotifySocket,
        watchdog: Duration,
    ) -> std::io::Result<Self> {
        let name = Path::new(command.get_program())
            .file_name()
            .map_or_else(|| "child".to_owned(), |n| n.to_string_lossy().into_owned());
        let log = socket.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let child = command
            .env("NOTIFY_SOCKET", socket.path())
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(out)
            .spawn()?;
        Ok(Self { child, log, name })
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) -> std::io::Result<bool> {
        Ok(std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?
            .success())
    }

    /// The exit status once the process has ended within `within`, else `None`.
    pub fn wait_exit(
        &mut self,
        within: Duration,
    ) -> std::io::Result<Option<std::process::ExitStatus>> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(None)
    }
}

impl Drop for NotifiedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} log ---\n{log}", self.name);
        }
    }
}

/// How many of `lines` are exactly `line`.
pub fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

/// The end of a watchdog test: a stopped process sends no ping (so systemd would kill
/// it), a continued one pings again, and SIGTERM brings `STOPPING=1` and exit status 0.
/// Panics (the test fails) with what was received otherwise.
pub fn assert_watchdog_follows_the_process(child: &mut NotifiedChild, socket: &NotifySocket) {
    assert!(
        child.signal("STOP").expect("kill runs"),
        "kill -STOP failed"
    );
    std::thread::sleep(Duration::from_millis(200));
    let _in_flight = socket
        .lines_during(Duration::from_millis(100))
        .expect("recv");
    let lines = socket.lines_during(Duration::from_secs(3)).expect("recv");
    assert_eq!(
        count(&lines, "WATCHDOG=1"),
        0,
        "pinged while stopped: {lines:?}"
    );

    assert!(
        child.signal("CONT").expect("kill runs"),
        "kill -CONT failed"
    );
    let (ping, seen) = socket
        .wait_for(Duration::from_secs(5), |l| l == "WATCHDOG=1")
        .expect("recv");
    assert!(ping.is_some(), "no ping after SIGCONT; got {seen:?}");

    assert!(
        child.signal("TERM").expect("kill runs"),
        "kill -TERM failed"
    );
    let (stopping, seen) = socket
        .wait_for(Duration::from_secs(10), |l| l == "STOPPING=1")
        .expect("recv");
    assert!(
        stopping.is_some(),
        "no STOPPING=1 after SIGTERM; got {seen:?}"
    );
    let status = child
        .wait_exit(Duration::from_secs(30))
        .expect("try_wait")
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
