//! One typed configuration: defaults, then a TOML file, then environment variables and
//! flags (clap reads both; a flag wins over its variable).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sandbox_core::config_file::{self, FileError};
use serde::{Deserialize, Serialize};

/// When session cookies carry the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    /// When the browser reached us over HTTPS (directly or per `X-Forwarded-Proto`
    /// from a TLS proxy).
    #[default]
    Auto,
    /// Always (the UI is only ever reached through TLS).
    Always,
    /// Never.
    Never,
}

/// Settings of `sandbox-ui`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where the history database lives.
    pub data_dir: PathBuf,
    /// Base URL of sandbox-api (without `/v1`).
    pub api_url: String,
    /// API key for sandbox-api.
    pub api_key: Option<String>,
    /// File with the API key (one key per line, as sandbox-api's; the first is used;
    /// must be mode 0600).
    pub api_key_file: Option<PathBuf>,
    /// How long a login lasts, in hours.
    pub session_hours: u64,
    /// When cookies are marked `Secure`.
    pub secure_cookies: SecureCookies,
    /// Login attempts allowed per minute, per client address and per user name.
    pub login_attempts_per_minute: u32,
    /// What "Forgot the password?" under the login form opens (e.g. where the install
    /// put the password).
    pub login_hint: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            data_dir: default_data_dir(),
            api_url: "http://127.0.0.1:8080".into(),
            api_key: None,
            api_key_file: None,
            session_hours: 24 * 7,
            secure_cookies: SecureCookies::Auto,
            login_attempts_per_minute: 5,
            login_hint:
                "An administrator can set a new one on the server: sandbox-ui user set NAME".into(),
        }
    }
}

/// `/var/lib/sandbox/ui` for root (the service), else a folder in the user's home, so
/// that a plain `sandbox-ui` works without permissions it does not have.
fn default_data_dir() -> PathBuf {
    let is_root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    });
    match std::env::var_os("HOME") {
        Some(home) if !is_root => PathBuf::from(home).join(".local/share/ai-sandbox/ui"),
        _ => PathBuf::from("/var/lib/sandbox/ui"),
    }
}

/// Flags shared by every subcommand: where the configuration and the data are. Like
/// [`ServeArgs`], they serialize to the file's shape ([`config_file::load_layered`]).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct StoreArgs {
    /// TOML configuration file (keys as in the README; flags and variables override it).
    #[arg(long, env = "SANDBOX_UI_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Folder of the history database [default: /var/lib/sandbox/ui as root, else
    /// ~/.local/share/ai-sandbox/ui].
    #[arg(long, env = "SANDBOX_UI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of the server: each overrides the file key it is named after.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeArgs {
    /// The configuration file and the data folder.
    #[command(flatten)]
    #[serde(flatten)]
    pub store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8081].
    #[arg(long, env = "SANDBOX_UI_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Base URL of sandbox-api, without /v1 [default: http://127.0.0.1:8080].
    #[arg(long, env = "SANDBOX_UI_API_URL")]
    pub api_url: Option<String>,
    /// API key for sandbox-api (prefer --api-key-file: flags show in `ps`).
    #[arg(long, env = "SANDBOX_UI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// File whose first line is the API key for sandbox-api; chmod 600.
    #[arg(long, env = "SANDBOX_UI_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// How long a login lasts, in hours [default: 168].
    #[arg(long, env = "SANDBOX_UI_SESSION_HOURS")]
    pub session_hours: Option<u64>,
    /// Mark cookies Secure: auto (when reached over HTTPS), always or never [default: auto].
    #[arg(long, env = "SANDBOX_UI_SECURE_COOKIES")]
    pub secure_cookies: Option<SecureCookies>,
    /// Login attempts allowed per minute, per client address and per user name [default: 5].
    #[arg(long, env = "SANDBOX_UI_LOGIN_ATTEMPTS")]
    pub login_attempts_per_minute: Option<u32>,
    /// What "Forgot the password?" under the login form opens, e.g. where the installer put the password.
    #[arg(long, env = "SANDBOX_UI_LOGIN_HINT")]
    pub login_hint: Option<String>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file or the key file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The key file holds no key.
    #[error("the API key file {0} holds no key")]
    NoKey(PathBuf),
    /// The API URL is not http(s).
    #[error("--api-url must start with http:// or https://, got {0:?}")]
    ApiUrl(String),
}

impl UiConfig {
    /// Defaults, then the file named by `args` (if any), then the data-dir flag.
    pub fn for_store(args: &StoreArgs) -> Result<Self, ConfigError> {
        Ok(config_file::load_layered(args.config.as_deref(), args)?)
    }

    /// The server's configuration: defaults, the file, then the serving flags, with
    /// the API key read from its file.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let mut cfg: Self = config_file::load_layered(args.store.config.as_deref(), args)?;
        cfg.api_url = cfg.api_url.trim_end_matches('/').to_owned();
        if let Some(stripped) = cfg.api_url.strip_suffix("/v1") {
            cfg.api_url = stripped.to_owned();
        }
        if !(cfg.api_url.starts_with("http://") || cfg.api_url.starts_with("https://")) {
            return Err(ConfigError::ApiUrl(cfg.api_url));
        }
        if cfg.api_key.is_none()
            && let Some(path) = &cfg.api_key_file
        {
            // The same file format as sandbox-api's key file; the first key is used.
            let first = config_file::read_keys(path)?.into_iter().next();
            cfg.api_key = Some(first.ok_or_else(|| ConfigError::NoKey(path.clone()))?);
        }
        Ok(cfg)
    }
}

impl UiConfig {
    /// The configuration as a TOML file would say it, the key hidden (`sandbox-ui config`).
    pub fn shown(&self) -> String {
        let hidden = Self {
            api_key: self.api_key.as_ref().map(|_| "(hidden)".into()),
            ..self.clone()
        };
        config_file::to_toml(&hidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_url_is_normalised() {
        let dir = std::env::temp_dir().join(format!("ui-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ui.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\napi_url = \"http://10.0.0.2:8080/v1/\"\nsession_hours = 2\n",
        )
        .unwrap();
        let args = ServeArgs {
            store: StoreArgs {
                config: Some(file.clone()),
                data_dir: Some(dir.join("data")),
            },
            session_hours: Some(5),
            ..ServeArgs::default()
        };
        let cfg = UiConfig::load(&args).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(cfg.api_url, "http://10.0.0.2:8080");
        assert_eq!(cfg.session_hours, 5);
        assert_eq!(cfg.data_dir, dir.join("data"));

        std::fs::write(&file, "unknown_key = 1\n").unwrap();
        let err = UiConfig::load(&args).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ui-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "sk-test\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let args = ServeArgs {
            api_key_file: Some(key.clone()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            UiConfig::load(&args),
            Err(ConfigError::File(FileError::NotPrivate { mode: 0o644, .. }))
        ));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            UiConfig::load(&args).unwrap().api_key.as_deref(),
            Some("sk-test")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
