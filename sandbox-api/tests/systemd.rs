//! sandbox-api as a systemd `Type=notify` service with `WatchdogSec=2`, against a
//! stand-in for systemd's notify socket: `READY=1` once bound, `STATUS=` lines that
//! follow the model, `WATCHDOG=1` every second, none while the process is stopped,
//! `STOPPING=1` on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sandbox_core::systemd::testing::{
    NotifiedChild, NotifySocket, assert_watchdog_follows_the_process, count,
};

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

/// sandbox-api on `model`, as a `Type=notify` service with `WatchdogSec=2`.
fn start(sock: &NotifySocket, model: &Path) -> NotifiedChild {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox-api"));
    command
        .arg("--model")
        .arg(model)
        .args(["--listen", "127.0.0.1:0", "--api-key", "sk-systemd-test"])
        .args(["--ctx", "512", "--threads", "1"]);
    NotifiedChild::spawn(command, sock, Duration::from_secs(2)).expect("sandbox-api starts")
}

#[test]
fn ready_status_and_watchdog_pings_that_stop_with_the_process() {
    let sock = NotifySocket::bind().expect("notify socket");
    let mut server = start(&sock, &fixture("smollm2-135m-instruct.gguf"));

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

    assert_watchdog_follows_the_process(&mut server, &sock);
}

#[test]
fn a_model_that_fails_to_load_shows_the_error_and_the_watchdog_keeps_pinging() {
    let sock = NotifySocket::bind().expect("notify socket");
    let bad = std::env::temp_dir().join(format!(
        "sandbox-api-systemd-{}-not-a-model.gguf",
        std::process::id()
    ));
    std::fs::write(&bad, b"this is not a GGUF file").expect("write");
    let server = start(&sock, &bad);

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
