//! sandbox-ui as a systemd `Type=notify` service with `WatchdogSec=2`, against a
//! stand-in for systemd's notify socket: `READY=1` once bound, `WATCHDOG=1` every
//! second, none while the process is stopped, `STOPPING=1` on SIGTERM. It needs no
//! API to start: its API URL is a closed port.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sandbox_core::systemd::testing::NotifySocket;

/// The running binary and its data folder; killed and removed on drop, its log
/// printed when the test failed.
struct Ui {
    child: Child,
    dir: PathBuf,
}

impl Ui {
    fn start(sock: &NotifySocket) -> Self {
        let dir = std::env::temp_dir().join(format!("sandbox-ui-systemd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test folder");
        let out = std::fs::File::create(dir.join("log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sandbox-ui"))
            .args(["--listen", "127.0.0.1:0", "--api-url", "http://127.0.0.1:9"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("NOTIFY_SOCKET", sock.path())
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("sandbox-ui starts");
        Self { child, dir }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            eprintln!("--- sandbox-ui log ---\n{log}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

#[test]
fn ready_and_watchdog_pings_that_stop_with_the_process() {
    let sock = NotifySocket::bind().expect("notify socket");
    let mut ui = Ui::start(&sock);

    let (ready, before) = sock
        .wait_for(Duration::from_secs(30), |l| l == "READY=1")
        .expect("recv");
    assert!(ready.is_some(), "no READY=1 within 30 s; got {before:?}");

    let lines = sock
        .lines_during(Duration::from_millis(3500))
        .expect("recv");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=serving on 127.0.0.1:")),
        "no serving status; got {lines:?}"
    );
    assert!(
        count(&lines, "WATCHDOG=1") >= 2,
        "expected pings every second; got {lines:?}"
    );

    ui.signal("STOP");
    std::thread::sleep(Duration::from_millis(200));
    let _in_flight = sock.lines_during(Duration::from_millis(100)).expect("recv");
    let lines = sock.lines_during(Duration::from_secs(3)).expect("recv");
    assert_eq!(
        count(&lines, "WATCHDOG=1"),
        0,
        "pinged while stopped: {lines:?}"
    );

    ui.signal("CONT");
    let (ping, seen) = sock
        .wait_for(Duration::from_secs(5), |l| l == "WATCHDOG=1")
        .expect("recv");
    assert!(ping.is_some(), "no ping after SIGCONT; got {seen:?}");

    ui.signal("TERM");
    let (stopping, seen) = sock
        .wait_for(Duration::from_secs(10), |l| l == "STOPPING=1")
        .expect("recv");
    assert!(
        stopping.is_some(),
        "no STOPPING=1 after SIGTERM; got {seen:?}"
    );
    let status = ui
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
