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
