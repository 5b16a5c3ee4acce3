//! sandbox-ui as a systemd `Type=notify` service with `WatchdogSec=2`, against a
//! stand-in for systemd's notify socket: `READY=1` once bound, `WATCHDOG=1` every
//! second, none while the process is stopped, `STOPPING=1` on SIGTERM. It needs no
//! API to start: its API URL is a closed port.

use std::process::Command;
use std::time::Duration;

use sandbox_core::systemd::testing::{
    NotifiedChild, NotifySocket, assert_watchdog_follows_the_process, count,
};

#[test]
fn ready_and_watchdog_pings_that_stop_with_the_process() {
    let sock = NotifySocket::bind().expect("notify socket");
    let data = std::env::temp_dir().join(format!("sandbox-ui-systemd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandbox-ui"));
    command
        .args(["--listen", "127.0.0.1:0", "--api-url", "http://127.0.0.1:9"])
        .arg("--data-dir")
        .arg(&data);
    let mut ui =
        NotifiedChild::spawn(command, &sock, Duration::from_secs(2)).expect("sandbox-ui starts");

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

    assert_watchdog_follows_the_process(&mut ui, &sock);
    drop(ui);
    let _ = std::fs::remove_dir_all(&data);
}
