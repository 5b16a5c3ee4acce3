//! sandbox-api as a systemd `Type=notify` service with `WatchdogSec=2`, against a
//! stand-in for systemd's notify socket: `READY=1` once bound, `STATUS=` lines that
//! follow the model, `WATCHDOG=1` every second, none while the process is stopped,
//! `STOPPING=1` on SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sandbox_core::systemd::testing::NotifySocket;

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("AI_SANDBOX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fixtures"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "missing test fixture {}: run scripts/fixtures/setup (or scripts/test)",
        path.display()
    );
    path
}

/// The running binary; killed on drop, its log printed when the test failed.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(sock: &NotifySocket, model: &std::path::Path, name: &str) -> Self {
        let log = std::env::temp_dir().join(format!(
            "sandbox-api-systemd-{}-{name}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sandbox-api"))
            .arg("--model")
            .arg(model)
            .args(["--listen", "127.0.0.1:0", "--api-key", "sk-systemd-test"])
            .args(["--ctx", "512", "--threads", "1"])
            .env("NOTIFY_SOCKET", sock.path())
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("sandbox-api starts");
        Self { child, log }
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- sandbox-api log ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

#[test]
fn ready_status_and_watchdog_pings_that_stop_with_the_process() {
    let sock = NotifySocket::bind().expect("notify socket");
    let mut server = Server::start(&sock, &fixture("smollm2-135m-instruct.gguf"), "ready");

    let (ready, before) = sock
        .wait_for(Duration::from_secs(60), |l| l == "READY=1")
        .expect("recv");
    assert!(ready.is_some(), "no READY=1 within 60 s; got {before:?}");

    let (status, seen) = sock
        .wait_for(Duration::from_secs(60), |l| l == "STATUS=ready")
        .expect("recv");
    assert!(
        status.is_some(),
        "no STATUS=ready within 60 s; got {seen:?}"
    );
    for line in &seen {
        assert!(
            line == "WATCHDOG=1" || line.starts_with("STATUS=loading"),
            "unexpected notification before ready: {line}"
        );
    }

    // WatchdogSec=2: a ping every second, while the engine's heartbeat is fresh.
    let lines = sock
        .lines_during(Duration::from_millis(3500))
        .expect("recv");
    assert!(
        count(&lines, "WATCHDOG=1") >= 2,
        "expected pings every second; got {lines:?}"
    );

    // A stopped process sends nothing (so systemd would kill it).
    server.signal("STOP");
    std::thread::sleep(Duration::from_millis(200));
    let _in_flight = sock.lines_during(Duration::from_millis(100)).expect("recv");
    let lines = sock.lines_during(Duration::from_secs(3)).expect("recv");
    assert_eq!(
        count(&lines, "WATCHDOG=1"),
        0,
        "pinged while stopped: {lines:?}"
    );

    // Continued, it pings again (the idle engine beats within 250 ms).
    server.signal("CONT");
    let (ping, seen) = sock
        .wait_for(Duration::from_secs(5), |l| l == "WATCHDOG=1")
        .expect("recv");
    assert!(ping.is_some(), "no ping after SIGCONT; got {seen:?}");

    server.signal("TERM");
    let (stopping, seen) = sock
        .wait_for(Duration::from_secs(10), |l| l == "STOPPING=1")
        .expect("recv");
    assert!(
        stopping.is_some(),
        "no STOPPING=1 after SIGTERM; got {seen:?}"
    );
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_model_that_fails_to_load_shows_the_error_and_the_watchdog_keeps_pinging() {
    let sock = NotifySocket::bind().expect("notify socket");
    let bad = std::env::temp_dir().join(format!(
        "sandbox-api-systemd-{}-not-a-model.gguf",
        std::process::id()
    ));
    std::fs::write(&bad, b"this is not a GGUF file").expect("write");
    let server = Server::start(&sock, &bad, "error");

    let (ready, before) = sock
        .wait_for(Duration::from_secs(60), |l| l == "READY=1")
        .expect("recv");
    assert!(ready.is_some(), "no READY=1 within 60 s; got {before:?}");
    let (status, seen) = sock
        .wait_for(Duration::from_secs(60), |l| l.starts_with("STATUS=error: "))
        .expect("recv");
    assert!(
        status.is_some(),
        "no STATUS=error within 60 s; got {seen:?}"
    );

    // No engine thread to vouch for: the answering runtime is what keeps it pinging
    // (systemd's Restart= would not help a model that cannot load).
    let lines = sock
        .lines_during(Duration::from_millis(3500))
        .expect("recv");
    assert!(
        count(&lines, "WATCHDOG=1") >= 2,
        "expected pings every second; got {lines:?}"
    );
    drop(server);
    let _ = std::fs::remove_file(&bad);
}
