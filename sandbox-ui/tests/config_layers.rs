//! Every documented setting of `sandbox-ui` at each layer: the default, then the file
//! key, then the environment variable, then the flag (`sandbox-ui config` prints what
//! the server would run with).

use std::path::Path;

use sandbox_core::config_file::testing::{Setting, check_all_layers, shown};

const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        env: "SANDBOX_UI_LISTEN",
        flag: &["--listen", "127.0.0.1:9003"],
        file: "\"127.0.0.1:9001\"",
        env_value: "127.0.0.1:9002",
        expect: [
            "\"127.0.0.1:8081\"",
            "\"127.0.0.1:9001\"",
            "\"127.0.0.1:9002\"",
            "\"127.0.0.1:9003\"",
        ],
    },
    Setting {
        key: "data_dir",
        env: "SANDBOX_UI_DATA_DIR",
        flag: &["--data-dir", "/d/c"],
        file: "\"/d/a\"",
        env_value: "/d/b",
        // The default (a folder in $HOME for a user) is checked by the next test.
        expect: ["*", "\"/d/a\"", "\"/d/b\"", "\"/d/c\""],
    },
    // A trailing /v1 is dropped whichever layer gave the URL.
    Setting {
        key: "api_url",
        env: "SANDBOX_UI_API_URL",
        flag: &["--api-url", "http://c:3"],
        file: "\"http://a:1/v1\"",
        env_value: "https://b:2/",
        expect: [
            "\"http://127.0.0.1:8080\"",
            "\"http://a:1\"",
            "\"https://b:2\"",
            "\"http://c:3\"",
        ],
    },
    Setting {
        key: "api_key",
        env: "SANDBOX_UI_API_KEY",
        flag: &["--api-key", "c"],
        file: "\"a\"",
        env_value: "b",
        expect: ["", "\"(hidden)\"", "\"(hidden)\"", "\"(hidden)\""],
    },
    Setting {
        key: "api_key_file",
        env: "SANDBOX_UI_API_KEY_FILE",
        flag: &["--api-key-file", "{dir}/k3"],
        file: "\"{dir}/k1\"",
        env_value: "{dir}/k2",
        expect: ["", "\"{dir}/k1\"", "\"{dir}/k2\"", "\"{dir}/k3\""],
    },
    Setting {
        key: "session_hours",
        env: "SANDBOX_UI_SESSION_HOURS",
        flag: &["--session-hours", "3"],
        file: "1",
        env_value: "2",
        expect: ["168", "1", "2", "3"],
    },
    Setting {
        key: "secure_cookies",
        env: "SANDBOX_UI_SECURE_COOKIES",
        flag: &["--secure-cookies", "auto"],
        file: "\"always\"",
        env_value: "never",
        expect: ["\"auto\"", "\"always\"", "\"never\"", "\"auto\""],
    },
    Setting {
        key: "login_attempts_per_minute",
        env: "SANDBOX_UI_LOGIN_ATTEMPTS",
        flag: &["--login-attempts-per-minute", "3"],
        file: "1",
        env_value: "2",
        expect: ["5", "1", "2", "3"],
    },
    Setting {
        key: "login_hint",
        env: "SANDBOX_UI_LOGIN_HINT",
        flag: &["--login-hint", "c"],
        file: "\"a\"",
        env_value: "b",
        expect: [
            "\"An administrator can set a new one on the server: sandbox-ui user set NAME\"",
            "\"a\"",
            "\"b\"",
            "\"c\"",
        ],
    },
];

#[test]
fn every_setting_wins_over_the_layer_below_it() {
    let failures = check_all_layers(Path::new(env!("CARGO_BIN_EXE_sandbox-ui")), SETTINGS);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_file_may_be_named_by_its_variable_and_the_data_dir_defaults_to_home() {
    let dir = std::env::temp_dir().join(format!("ui-layers-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ui.toml");
    std::fs::write(&file, "session_hours = 9\n").expect("write");
    let bin = Path::new(env!("CARGO_BIN_EXE_sandbox-ui"));
    let path = file.to_string_lossy().into_owned();
    let table = shown(bin, None, &[("SANDBOX_UI_CONFIG", &path)], &[]).expect("config");
    assert_eq!(
        table.get("session_hours").and_then(toml::Value::as_integer),
        Some(9)
    );
    let data_dir = table
        .get("data_dir")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    assert!(
        data_dir == "/var/lib/sandbox/ui" || data_dir.ends_with(".local/share/ai-sandbox/ui"),
        "{data_dir}"
    );
    std::fs::write(&file, "sesion_hours = 9\n").expect("write");
    let err = shown(bin, Some(&file), &[], &[]).expect_err("unknown key");
    assert!(
        err.contains("sesion_hours") && err.contains("ui.toml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
